//go:build linux

package sched

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestYieldHandsOverTheCore: with another thread runnable on the same CPU,
// every Yield is a context switch (a sched_yield that gives the core
// away), counted by the kernel as a nonvoluntary one. A Yield that did not
// reach the kernel, or called another system call, would leave the count
// unchanged.
func TestYieldHandsOverTheCore(t *testing.T) {
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Skipf("sched_getaffinity: %v", err)
	}
	cpu := -1
	for i := 0; i < 1024; i++ {
		if cpus.IsSet(i) {
			cpu = i
			break
		}
	}
	var one unix.CPUSet
	one.Set(cpu)

	// A competitor on the same CPU that never blocks and yields at every
	// turn (a raw sched_yield, not the code under test), as a waiting rank
	// does: the two take turns.
	stop := atomic.Bool{}
	ready := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Locked and never unlocked: the thread, pinned, ends with the
		// goroutine.
		runtime.LockOSThread()
		ready <- unix.SchedSetaffinity(0, &one)
		for !stop.Load() {
			_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		}
	}()
	if err := <-ready; err != nil {
		stop.Store(true)
		<-done
		t.Skipf("sched_setaffinity: %v", err)
	}
	defer func() { stop.Store(true); <-done }()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Skipf("sched_setaffinity: %v", err)
	}
	// Give the thread back to the runtime as it was.
	defer func() { _ = unix.SchedSetaffinity(0, &cpus) }()
	const n = 200
	before := nonvoluntary(t)
	for range n {
		Yield()
	}
	got := nonvoluntary(t) - before
	t.Logf("%d switches", got)
	if got < n/2 {
		t.Fatalf("%d Yields with a busy thread on the same CPU switched %d times, want about %d", n, got, n)
	}
}

// nonvoluntary reads the calling thread's nonvoluntary_ctxt_switches.
func nonvoluntary(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", unix.Gettid()))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
			var n int
			if _, err := fmt.Sscan(strings.TrimSpace(v), &n); err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no nonvoluntary_ctxt_switches in /proc")
	return 0
}
