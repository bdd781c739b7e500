// Package inproc is the transport between ranks that are goroutines of one
// process (tests, mpitest.Run). A frame goes from the sender's payload into
// the receiver's Sink buffer with a single copy, inside Send; there are no
// goroutines and no channels on the data path.
package inproc

import (
	"fmt"
	"sync"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// Hub connects the endpoints of size ranks. It is safe for concurrent use.
type Hub struct {
	slots []slot
}

type slot struct {
	attached chan struct{} // closed once ep is set
	mu       sync.Mutex    // guards ep before attached is closed
	ep       *Endpoint     // read only after <-attached
	gate     gate          // admission to ep.sink
}

// NewHub returns a hub for ranks 0 … size-1. It panics if size is negative.
func NewHub(size int) *Hub {
	if size < 0 {
		panic(fmt.Sprintf("inproc: negative hub size %d", size))
	}
	h := &Hub{slots: make([]slot, size)}
	for i := range h.slots {
		h.slots[i].attached = make(chan struct{})
		h.slots[i].gate.idle.L = &h.slots[i].gate.mu
	}
	return h
}

// Endpoint attaches rank's sink to the hub and returns its endpoint. Each
// rank attaches exactly once; ranks may attach concurrently and in any order,
// and Sends to a rank that has not attached yet wait for it. Endpoint panics
// if rank is out of range or already attached: both are programming errors
// of the caller, not conditions to handle.
func (hub *Hub) Endpoint(rank int, sink transport.Sink) *Endpoint {
	if rank < 0 || rank >= len(hub.slots) {
		panic(fmt.Sprintf("inproc: rank %d out of range [0, %d)", rank, len(hub.slots)))
	}
	e := &Endpoint{
		hub:   hub,
		rank:  rank,
		sink:  sink,
		done:  make(chan struct{}),
		lanes: make([]lane, len(hub.slots)),
	}
	s := &hub.slots[rank]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ep != nil {
		panic(fmt.Sprintf("inproc: rank %d attached twice", rank))
	}
	s.ep = e
	close(s.attached)
	return e
}

// Endpoint is one rank's attachment to a Hub. It is safe for concurrent use
// and starts no goroutines.
//
// Send delivers synchronously: it calls the receiver's Sink from the sending
// goroutine. Frames from this rank to one receiver pass through a lane that
// admits one delivering goroutine at a time, which keeps the Sink's promise
// that frames from one peer arrive one at a time and in order. A Send that
// finds the lane busy (concurrent Sends, or a Sink that sends from inside
// Deliver) copies the frame into the lane's queue and returns; the goroutine
// already delivering hands it on before its own Send returns. So Sends never
// wait for each other, Sinks may send re-entrantly, and frames still reach
// the Sink in the order their Sends returned.
//
// Inproc never calls Sink.PeerLost: ranks in one process do not vanish,
// and Close is always orderly.
type Endpoint struct {
	hub   *Hub
	rank  int
	sink  transport.Sink
	done  chan struct{} // closed when Close begins
	once  sync.Once
	lanes []lane // indexed by destination rank
}

// lane orders the frames from one endpoint to one destination.
type lane struct {
	mu     sync.Mutex
	busy   bool    // a goroutine is delivering this lane's frames
	closed bool    // the Bye is in: no more frames
	used   bool    // a frame was sent, so Close owes the receiver a Bye
	queue  []frame // frames for the busy goroutine, in Send order
}

type frame struct {
	h       transport.Header
	payload []byte // the caller's slice while delivered directly; an owned copy once queued
}

// gate admits deliveries into one rank's sink until that rank closes.
type gate struct {
	mu     sync.Mutex
	idle   sync.Cond // signalled when active drops to zero
	closed bool
	active int
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.active++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	g.active--
	if g.active == 0 {
		g.idle.Broadcast()
	}
	g.mu.Unlock()
}

func (g *gate) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// close refuses new deliveries and waits for those in progress.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for g.active > 0 {
		g.idle.Wait()
	}
}

// Send hands the frame to the Sink of rank h.Dst (see Endpoint for how);
// h.Src must be this endpoint's rank. For KindData the payload is copied into
// the slice the receiver's Sink.Buffer returns; the caller may reuse payload
// once Send returns. KindBye is reserved to Close.
//
// If h.Dst has not attached yet, Send waits until it does or this endpoint
// is closed. It returns an error wrapping transport.ErrClosed after Close and
// one wrapping transport.ErrPeerLost if h.Dst has closed.
func (e *Endpoint) Send(h transport.Header, payload []byte) error {
	if err := e.validate(h, payload); err != nil {
		return err
	}
	dst := int(h.Dst)
	s := &e.hub.slots[dst]
	select {
	case <-e.done:
		return e.errClosed()
	default:
	}
	select {
	case <-s.attached:
	case <-e.done:
		return e.errClosed()
	}
	if s.gate.isClosed() {
		return errPeerClosed(dst)
	}
	return e.push(dst, frame{h: h, payload: payload}, false)
}

func (e *Endpoint) errClosed() error {
	return fmt.Errorf("inproc: send on rank %d: %w", e.rank, transport.ErrClosed)
}

func errPeerClosed(rank int) error {
	return fmt.Errorf("inproc: rank %d has closed: %w", rank, transport.ErrPeerLost)
}

// push sends f through the lane to dst: directly if the lane is idle, queued
// otherwise. bye marks the final frame from Close.
func (e *Endpoint) push(dst int, f frame, bye bool) error {
	l := &e.lanes[dst]
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return e.errClosed()
	}
	if bye {
		l.closed = true
		if !l.used {
			l.mu.Unlock()
			return nil // never talked to dst: nothing to say goodbye to
		}
	}
	l.used = true
	if l.busy {
		f.payload = append([]byte(nil), f.payload...)
		l.queue = append(l.queue, f)
		l.mu.Unlock()
		return nil
	}
	l.busy = true
	l.mu.Unlock()

	err := e.deliver(dst, f)
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.queue = l.queue[:0]
			l.busy = false
			l.mu.Unlock()
			return err
		}
		q := l.queue[0]
		l.queue[0] = frame{}
		l.queue = l.queue[1:]
		l.mu.Unlock()
		// The Send of a queued frame has returned already; if dst closed
		// meanwhile the frame is dropped, as it would be on a network.
		_ = e.deliver(dst, q)
	}
}

// deliver hands one frame to dst's sink; only the lane's busy goroutine
// calls it.
func (e *Endpoint) deliver(dst int, f frame) error {
	s := &e.hub.slots[dst]
	if !s.gate.enter() {
		return errPeerClosed(dst)
	}
	defer s.gate.leave()
	sink := s.ep.sink
	if f.h.Kind != transport.KindData {
		sink.Deliver(f.h, nil)
		return nil
	}
	buf := sink.Buffer(f.h)
	if len(buf) != len(f.payload) {
		return fmt.Errorf("inproc: sink of rank %d returned a %d-byte buffer for a %d-byte frame", dst, len(buf), len(f.payload))
	}
	copy(buf, f.payload)
	sink.Deliver(f.h, buf)
	return nil
}

// Close closes the endpoint. It stops deliveries into this rank's sink
// (waiting for those in progress; the sink gets no call after Close
// returns), so Sends to this rank fail with ErrPeerLost from then on. Then it
// sends a KindBye frame, after everything sent before, to every rank this
// endpoint has sent to that is still open. Later Sends fail with ErrClosed.
// Close is idempotent, and concurrent calls all return once it is done. It
// must not be called from inside a Sink method of this rank (it would wait
// for itself).
func (e *Endpoint) Close() error {
	e.once.Do(func() {
		close(e.done)
		e.hub.slots[e.rank].gate.close()
		for dst := range e.lanes {
			if dst == e.rank {
				continue // our own sink is closed
			}
			select {
			case <-e.hub.slots[dst].attached:
			default:
				continue // never attached, so never sent to
			}
			bye := transport.Header{Kind: transport.KindBye, Src: int32(e.rank), Dst: int32(dst)}
			_ = e.push(dst, frame{h: bye}, true) // a peer that closed meanwhile needs no Bye
		}
	})
	return nil
}

// validate checks a frame before it is sent.
func (e *Endpoint) validate(h transport.Header, payload []byte) error {
	if err := transport.CheckSend(e.rank, &h, payload); err != nil {
		return fmt.Errorf("inproc: %w", err)
	}
	if int(h.Dst) >= len(e.hub.slots) {
		return fmt.Errorf("inproc: destination rank %d out of range [0, %d)", h.Dst, len(e.hub.slots))
	}
	return nil
}
