package mpi

import (
	"testing"
	"time"
	"unsafe"
)

// TestSpinnerBudget: a wait that sees no progress gives up spinning after
// spinBudget; one whose polls keep making progress (restart) spins on.
func TestSpinnerBudget(t *testing.T) {
	noYield := func() {}
	var idle spinner
	start := time.Now()
	for {
		if ok, _ := idle.more(noYield); !ok {
			break
		}
	}
	if el := time.Since(start); el < spinBudget {
		t.Fatalf("spinning stopped after %v, before the budget of %v", el, spinBudget)
	}

	var busy spinner
	for start := time.Now(); time.Since(start) < 3*spinBudget; {
		ok, _ := busy.more(noYield)
		if !ok {
			t.Fatal("a spinner restarted at every poll ran out of budget")
		}
		busy.restart() // this poll made progress
	}
}

// TestRequestSize: a Request is one allocation per Irecv; it stays in the
// 64-byte size class.
func TestRequestSize(t *testing.T) {
	if n := unsafe.Sizeof(Request{}); n > 64 {
		t.Errorf("Request is %d bytes; keep it at most 64 (see its doc)", n)
	}
}
