package sched

import (
	"sync/atomic"
	"testing"
)

// TestWatch: Watch returns the first non-zero value it reads, zero after n
// looks at a word that stays zero, and sees a store another goroutine
// makes while it looks.
func TestWatch(t *testing.T) {
	var word uint64
	for _, n := range []int{-1, 0, 1, 1000} {
		if got := Watch(&word, n); got != 0 {
			t.Errorf("Watch of a zero word, %d looks: %#x, want 0", n, got)
		}
	}
	word = 0x8000_0000_0000_0001 // every bit counts, the top one too
	if got := Watch(&word, 1); got != word {
		t.Errorf("Watch of a set word: %#x, want %#x", got, word)
	}
	if got := Watch(&word, 0); got != 0 {
		t.Errorf("Watch with no looks: %#x, want 0", got)
	}

	// A store made while Watch looks: it must be seen (a loop whose load
	// were hoisted out of it would spin on a stale zero to the end).
	var shared uint64
	started, done := make(chan struct{}), make(chan uint64)
	go func() {
		close(started)
		for {
			if w := Watch(&shared, 1<<20); w != 0 {
				done <- w
				return
			}
		}
	}()
	<-started
	atomic.StoreUint64(&shared, 42)
	if got := <-done; got != 42 {
		t.Fatalf("Watch saw %d, want the 42 stored while it looked", got)
	}
}

// BenchmarkWatch is the cost of a look at a word in this core's cache
// (with the spin-wait hint on amd64 and arm64).
func BenchmarkWatch(b *testing.B) {
	var word uint64
	for b.Loop() {
		Watch(&word, 64)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/look")
}
