package sched

import "time"

// The spinning part of gorun's waiting policy, shared by every wait that
// polls before it parks (package mpi's blocking calls, the TCP transport's
// writes to a full socket): pure polling for SpinTime, then polling with
// Yield between looks, for up to SpinBudget in all; then the caller parks.
// Waking a parked thread costs 20–30 µs on a small VM, so a reply that is
// microseconds away is caught by spinning, and a long wait costs at most
// SpinBudget of CPU. On a host with more ranks than cores, waiters yield
// from the first empty look (Spinner.Yield set from the start).
const (
	SpinTime   = 20 * time.Microsecond
	SpinBudget = time.Millisecond
)

// Spinner carries the spinning policy through one wait. Its zero value
// polls without yielding for SpinTime; set Yield to yield from the start.
// A Spinner is used by one goroutine.
type Spinner struct {
	start time.Time
	i     int
	// Yield: give the core away after each empty look. Set from the
	// start on an oversubscribed host; More and Looked set it once
	// SpinTime has passed.
	Yield bool
}

// More is called after each empty look, and calls yield if s.Yield. Every
// 32nd call (tick) it reads the clock, which costs more than a look: past
// SpinTime it sets s.Yield, past SpinBudget it returns false: time to park.
func (s *Spinner) More(yield func()) (ok, tick bool) {
	if ok, tick = s.Looked(1); ok && s.Yield {
		yield()
	}
	return ok, tick
}

// Looked is More for n empty looks, without the yield: the caller yields
// after each of its looks while s.Yield is set. tick reports that it read
// the clock (once every 32 looks).
func (s *Spinner) Looked(n int) (ok, tick bool) {
	i := s.i
	s.i += n
	if i>>5 == s.i>>5 {
		return true, false
	}
	if s.start.IsZero() {
		s.start = time.Now()
	} else if el := time.Since(s.start); el > SpinBudget {
		return false, true
	} else if el > SpinTime {
		s.Yield = true
	}
	return true, true
}

// Restart starts the budget again, keeping the yielding: the caller's polls
// made progress (a payload streaming in over TCP takes longer than
// SpinBudget), and parking now would only add a wake-up to its end.
func (s *Spinner) Restart() {
	s.start = time.Time{}
}
