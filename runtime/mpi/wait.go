package mpi

import (
	"slices"

	"github.com/gorun-hpc/gorun/runtime/internal/sched"
	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/shm"
)

// The waiting policy of blocking calls.
//
// A rank blocked in a receive first polls the transports that can make
// progress in its own goroutine (shared memory), which delivers a reply that
// is microseconds away without the 20–30 µs it costs to wake a sleeping
// thread. Spinning costs a core, so it is bounded (sched.Spinner, which the
// TCP transport's writes to a full socket share):
//
//   - pure polling for sched.SpinTime (20 µs),
//   - then polling with sched_yield between rounds, which hands the core to
//     another runnable process at once, for up to sched.SpinBudget (1 ms)
//     in all (counted from the last poll that made progress: a message
//     streaming in over TCP keeps its receiver polling),
//   - then the goroutine parks; the transport's own reader goroutine sleeps
//     (shm: on a FIFO doorbell in the netpoller, which holds no scheduler
//     slot) and wakes it when a message arrives.
//
// When this host runs more of the job's ranks than it has CPUs (8 ranks on
// a 2-core laptop), pure spinning only delays the rank that holds the data,
// so waiters yield from the first empty poll, as Open MPI does when it finds
// itself oversubscribed. Either way a rank that waits long uses at most
// sched.SpinBudget of CPU per wait and none after that: blocked for 3 s, it
// burns about a millisecond.
//
// A blocking typed receive from a rank on this host spins the same way,
// but inside shm.Endpoint.Take (recvDirect), watching that rank's ring
// itself; when the budget is spent it posts its request and parks at once.
// wait blocks until r completes, following the policy above.
func (w *world) wait(r *request) { w.waitFor(r, false) }

// waitFor is wait; with batch it polls allPollers, PollAll where a
// transport has it (transport.BatchPoller): for WaitAll, which needs every frame that has
// arrived, not just the first (a window of 64 Irecvs would otherwise cost
// 64 Polls).
func (w *world) waitFor(r *request, batch bool) {
	if !spinUntil(w, r, batch) {
		r.park()
	}
}

// spinUntil polls the transports following the policy above until d is
// done, and reports whether it is; false: the spinning is used up, and the
// caller blocks. A type parameter rather than a func value: a method value
// would allocate on every wait.
func spinUntil[D interface{ isDone() bool }](w *world, d D, batch bool) bool {
	if d.isDone() {
		return true
	}
	ps := w.pollers
	if batch {
		ps = w.allPollers
	}
	if len(ps) == 0 {
		return false
	}
	sp := sched.Spinner{Yield: w.oversubscribed}
	for {
		progress := false
		for _, p := range ps {
			if p.Poll() {
				if d.isDone() {
					return true // skip the other pollers: the reply is on the critical path
				}
				progress = true
			}
		}
		if d.isDone() {
			return true
		}
		if progress {
			sp.Restart()
		}
		if ok, _ := sp.More(sched.Yield); !ok {
			return false
		}
	}
}

// pollAllOf makes a BatchPoller's PollAll its Poll, for allPollers.
type pollAllOf struct{ transport.BatchPoller }

func (p pollAllOf) Poll() bool { return p.PollAll() }

// pollAll hands every frame that has arrived at the transports to the
// engine (PollAll where a transport has it), for Iprobe.
func (w *world) pollAll() {
	for _, p := range w.allPollers {
		p.Poll()
	}
}

// poll runs one round of polling, for Test.
func (w *world) poll() {
	for _, p := range w.pollers {
		p.Poll()
	}
}

// addEndpoint registers ep to be closed with the world and, if it can
// poll, to be polled by waiters. Only Init calls it.
func (w *world) addEndpoint(ep transport.Endpoint) {
	w.endpoints = append(w.endpoints, ep)
	if p, ok := ep.(transport.Poller); ok {
		w.pollers = append(w.pollers, p)
		all := p
		if bp, ok := p.(transport.BatchPoller); ok {
			all = pollAllOf{bp}
		}
		w.allPollers = append(w.allPollers, all)
		if _, isShm := ep.(*shm.Endpoint); !isShm {
			w.netPollers = append(w.netPollers, p)
		}
	}
	if f, ok := ep.(transport.PeerFailer); ok {
		// Launcher events may arrive while Init still adds endpoints.
		w.failersMu.Lock()
		w.failers = append(w.failers, f)
		w.failersMu.Unlock()
	}
}

// failPeer tells the endpoints that can be told that rank (every rank when
// rank < 0) is gone, so that Sends waiting on the network for it fail now
// with err.
func (w *world) failPeer(rank int, err error) {
	w.failersMu.Lock()
	fs := slices.Clone(w.failers)
	w.failersMu.Unlock()
	for _, f := range fs {
		f.FailPeer(rank, err)
	}
}
