package mpi

import (
	"time"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// The waiting policy of blocking calls.
//
// A rank blocked in a receive first polls the transports that can make
// progress in its own goroutine (shared memory), which delivers a reply that
// is microseconds away without the 20–30 µs it costs to wake a sleeping
// thread. Spinning costs a core, so it is bounded:
//
//   - spinPolls rounds of pure polling (well under a microsecond each),
//   - then polling with sched_yield between rounds, which hands the core to
//     another runnable process at once when there are more ranks than cores
//     (8 ranks on a 2-core laptop), for at most spinBudget in total,
//   - then the goroutine parks; the transport's own reader goroutine sleeps
//     (shm: on a FIFO doorbell in the netpoller, which holds no scheduler
//     slot) and wakes it when a message arrives.
//
// So a rank that waits long uses at most spinBudget of CPU per wait, and
// none after that: a rank blocked for 3 s burns about a millisecond.
const (
	spinPolls  = 200
	spinBudget = time.Millisecond
)

// wait blocks until r completes, following the policy above.
func (w *world) wait(r *request) {
	if r.isDone() {
		return
	}
	if len(w.pollers) > 0 {
		var start time.Time
		for i := 0; ; i++ {
			for _, p := range w.pollers {
				p.Poll()
			}
			if r.isDone() {
				return
			}
			if i < spinPolls {
				continue
			}
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > spinBudget {
				break
			}
			osYield()
		}
	}
	r.park()
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
	}
}
