package sched

import (
	"testing"
	"time"
)

// TestSpinnerBudget: a wait that sees no progress gives up spinning after
// SpinBudget and yields once past SpinTime; one whose polls keep making
// progress (Restart) spins on.
func TestSpinnerBudget(t *testing.T) {
	yields := 0
	count := func() { yields++ }
	var idle Spinner
	start := time.Now()
	for {
		if ok, _ := idle.More(count); !ok {
			break
		}
	}
	if el := time.Since(start); el < SpinBudget {
		t.Fatalf("spinning stopped after %v, before the budget of %v", el, SpinBudget)
	}
	if yields == 0 || !idle.Yield {
		t.Fatalf("%d yields in a wait of %v: past SpinTime the spinner yields", yields, SpinBudget)
	}

	// Take's calls count several looks each: the same budget, and the
	// clock read once per 32 looks.
	var batched Spinner
	calls, ticks := 0, 0
	for start := time.Now(); ; calls++ {
		ok, tick := batched.Looked(8)
		if tick {
			ticks++
		}
		if !ok {
			if el := time.Since(start); el < SpinBudget {
				t.Fatalf("batched spinning stopped after %v, before the budget of %v", el, SpinBudget)
			}
			break
		}
	}
	if want := (calls + 1) * 8 / 32; ticks != want {
		t.Errorf("%d calls of 8 looks read the clock %d times, want %d", calls+1, ticks, want)
	}
	if !batched.Yield {
		t.Error("past SpinTime, the batched spinner does not say yield")
	}

	var busy Spinner
	for start := time.Now(); time.Since(start) < 3*SpinBudget; {
		if ok, _ := busy.More(func() {}); !ok {
			t.Fatal("a spinner restarted at every poll ran out of budget")
		}
		busy.Restart() // this poll made progress
	}

	// Oversubscribed: yield from the first look.
	yields = 0
	over := Spinner{Yield: true}
	over.More(count)
	if yields != 1 {
		t.Errorf("a spinner with Yield set yielded %d times after its first look, want 1", yields)
	}
}
