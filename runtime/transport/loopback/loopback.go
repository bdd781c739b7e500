// Package loopback is the transport a rank uses to send to itself (Open
// MPI's "self"): a frame goes straight from Send into the rank's own Sink,
// copied once, from the caller's payload into the buffer Sink.Buffer returns
// (or by the Sink itself, if it is a transport.FrameSink).
package loopback

import (
	"fmt"
	"sync"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// Endpoint delivers the frames a rank sends to itself. It is safe for
// concurrent use and starts no goroutines.
//
// Delivery normally happens synchronously inside Send. Two cases need care,
// because the Sink must see the frames of one peer (here: itself) one at a
// time: when Sends run concurrently, and when the Sink sends to its own rank
// from inside Deliver (a synchronous-mode ack, say). Then the frame is copied
// into a queue and the goroutine already delivering hands it to the Sink
// before its own Send returns. Frames still reach the Sink in the order their
// Sends returned, and a Sink may call Send re-entrantly without deadlock.
type Endpoint struct {
	rank int
	sink transport.Sink

	mu     sync.Mutex
	idle   sync.Cond // signalled when busy turns false
	busy   bool      // a goroutine is handing frames to the sink
	closed bool
	queue  []frame // frames waiting for the busy goroutine, in Send order
}

type frame struct {
	h       transport.Header
	payload []byte // owned copy
}

// New returns the loopback endpoint of rank, delivering into sink.
func New(rank int, sink transport.Sink) *Endpoint {
	e := &Endpoint{rank: rank, sink: sink}
	e.idle.L = &e.mu
	return e
}

// Send hands the frame to the Sink of this rank; h.Src and h.Dst must both be
// the endpoint's rank. For KindData, payload is copied into the slice
// sink.Buffer(h) returns and sink.Deliver follows; KindAck frames (no
// payload) are delivered directly. KindBye is reserved to Close. The caller
// may reuse payload as soon as Send returns. After Close, Send returns an
// error wrapping transport.ErrClosed.
func (e *Endpoint) Send(h transport.Header, payload []byte) error {
	if err := validate(e.rank, h, payload); err != nil {
		return err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fmt.Errorf("loopback: send on rank %d: %w", e.rank, transport.ErrClosed)
	}
	if e.busy {
		// Another goroutine, possibly our caller further up the stack inside
		// the sink, is delivering: queue a copy for it.
		e.queue = append(e.queue, frame{h: h, payload: append([]byte(nil), payload...)})
		e.mu.Unlock()
		return nil
	}
	e.busy = true
	e.mu.Unlock()

	err := e.deliver(h, payload)
	for {
		e.mu.Lock()
		if len(e.queue) == 0 || e.closed {
			e.queue = nil
			e.busy = false
			e.idle.Broadcast()
			e.mu.Unlock()
			return err
		}
		f := e.queue[0]
		e.queue[0] = frame{}
		e.queue = e.queue[1:]
		e.mu.Unlock()
		// A queued frame's Send has already returned: a sink that hands back
		// a wrong-sized buffer loses that frame, with nobody to tell.
		_ = e.deliver(f.h, f.payload)
	}
}

// deliver hands one frame to the sink. Only the busy goroutine calls it.
func (e *Endpoint) deliver(h transport.Header, payload []byte) error {
	if h.Kind != transport.KindData {
		e.sink.Deliver(h, nil)
		return nil
	}
	if fs, ok := e.sink.(transport.FrameSink); ok {
		fs.DeliverFrame(h, payload)
		return nil
	}
	buf := e.sink.Buffer(h)
	if len(buf) != len(payload) {
		return fmt.Errorf("loopback: sink of rank %d returned a %d-byte buffer for a %d-byte frame", e.rank, len(buf), len(payload))
	}
	copy(buf, payload)
	e.sink.Deliver(h, buf)
	return nil
}

// Close stops delivery: it waits for a delivery in progress to finish, drops
// frames still queued behind it, and makes later Sends fail with ErrClosed.
// The sink gets no call after Close returns. Close sends no Bye: the only
// peer of a loopback endpoint is the rank that is closing. Close is
// idempotent; it must not be called from inside a Sink method of this rank
// (it would wait for itself).
func (e *Endpoint) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for e.busy {
		e.idle.Wait()
	}
	return nil
}

// validate checks a frame before it is sent.
func validate(rank int, h transport.Header, payload []byte) error {
	if err := transport.CheckSend(rank, &h, payload); err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if int(h.Dst) != rank {
		return fmt.Errorf("loopback: frame to rank %d on the self endpoint of rank %d", h.Dst, rank)
	}
	return nil
}
