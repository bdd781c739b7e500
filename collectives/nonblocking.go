package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Non-blocking collectives (Ibarrier, Ibcast, Ireduce, Iallreduce,
// Iallgather) are the blocking algorithms run on their own goroutine by
// mpi.Start. The call validates its arguments, draws the call's sequence
// number and does any one-time set-up (the host-aware sub-communicators of
// Iallreduce) on the calling goroutine before returning, so successive calls
// are numbered identically on every rank and their messages, tagged with
// that number, never match those of another call, blocking or not.
//
// Several may be outstanding on one communicator at a time, together with
// blocking collectives issued after them; every rank must still start them
// in the same order. Argument errors are reported by the returned Request.
// A nil communicator gives a nil Request (which WaitAll skips): there is no
// communicator to attach an error to.

// start runs a planned collective as a non-blocking request; a planning
// error completes the request at once with that error.
func start(c *mpi.Comm, run func() error, err error) *mpi.Request {
	if c == nil {
		return nil
	}
	if err != nil {
		return mpi.Start(c, func() error { return err })
	}
	return mpi.Start(c, run)
}
