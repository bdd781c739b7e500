package transporttest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// WaitTimeout bounds every Recorder.Wait. It is generous because the suite
// also runs under the race detector on loaded machines; a correct transport
// never comes close to it.
var WaitTimeout = 2 * time.Minute

// Frame is one frame handed to a Recorder's Deliver. Payload is the slice the
// Recorder's Buffer returned (nil for control frames).
type Frame struct {
	Header  transport.Header
	Payload []byte
}

// Lost is one PeerLost call.
type Lost struct {
	Rank int
	Err  error
}

// Recorder is a transport.Sink that records every frame and lost peer and
// checks that the transport keeps the Sink contract:
//
//   - calls for frames from one peer never overlap;
//   - Deliver of a data frame follows the Buffer call for it and passes back
//     the very slice Buffer returned (no intermediate copy);
//   - control frames carry no payload, frames are addressed to Rank;
//   - nothing is called after MarkClosed.
//
// Breaches are collected and reported by Violations. A Recorder is safe for
// concurrent use.
type Recorder struct {
	// Rank is the rank of the endpoint this Recorder is the sink of.
	Rank int

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever something is recorded
	frames   []Frame
	lost     []Lost
	problems []string
	inCall   map[int32]int    // src → calls in progress
	pending  map[int32][]byte // src → slice from Buffer not yet delivered
	closed   bool
}

// NewRecorder returns an empty Recorder for the endpoint of rank.
func NewRecorder(rank int) *Recorder {
	return &Recorder{
		Rank:    rank,
		changed: make(chan struct{}),
		inCall:  make(map[int32]int),
		pending: make(map[int32][]byte),
	}
}

// enter records the start of a sink call for a frame from src.
func (r *Recorder) enter(what string, h transport.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.problemLocked("%s(%+v) after the endpoint was closed", what, h)
	}
	if int(h.Dst) != r.Rank {
		r.problemLocked("%s(%+v): frame for rank %d handed to the sink of rank %d", what, h, h.Dst, r.Rank)
	}
	r.inCall[h.Src]++
	if r.inCall[h.Src] > 1 {
		r.problemLocked("%s(%+v): overlapping sink calls for frames from rank %d", what, h, h.Src)
	}
}

func (r *Recorder) leave(h transport.Header) {
	r.mu.Lock()
	r.inCall[h.Src]--
	r.mu.Unlock()
}

func (r *Recorder) problemLocked(format string, args ...any) {
	if len(r.problems) < 50 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// signalLocked wakes every Wait.
func (r *Recorder) signalLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Buffer implements transport.Sink. It returns a fresh slice of h.Len bytes.
func (r *Recorder) Buffer(h transport.Header) []byte {
	r.enter("Buffer", h)
	defer r.leave(h)
	buf := make([]byte, h.Len)
	r.mu.Lock()
	defer r.mu.Unlock()
	if h.Kind != transport.KindData {
		r.problemLocked("Buffer called for a %s frame %+v", h.Kind, h)
	}
	if _, ok := r.pending[h.Src]; ok {
		r.problemLocked("Buffer(%+v) while the previous frame from rank %d is undelivered", h, h.Src)
	}
	r.pending[h.Src] = buf
	return buf
}

// Deliver implements transport.Sink.
func (r *Recorder) Deliver(h transport.Header, buf []byte) {
	r.enter("Deliver", h)
	defer r.leave(h)
	r.mu.Lock()
	defer r.mu.Unlock()
	if h.Kind == transport.KindData {
		want, ok := r.pending[h.Src]
		delete(r.pending, h.Src)
		switch {
		case !ok:
			r.problemLocked("Deliver(%+v) without a Buffer call", h)
		case len(buf) != int(h.Len):
			r.problemLocked("Deliver(%+v) with %d bytes", h, len(buf))
		case len(buf) > 0 && (len(want) != len(buf) || &want[0] != &buf[0]):
			r.problemLocked("Deliver(%+v) with a slice other than the one Buffer returned", h)
		}
	} else if len(buf) != 0 {
		r.problemLocked("Deliver(%+v): %s frame with %d payload bytes", h, h.Kind, len(buf))
	}
	r.frames = append(r.frames, Frame{Header: h, Payload: buf})
	r.signalLocked()
}

// FrameRecorder is a Recorder that is also a transport.FrameSink, so that
// transports that deliver whole frames in one call are checked on that path
// too. Frames it takes through DeliverFrame are recorded with a copy of
// their payload.
type FrameRecorder struct{ *Recorder }

// DeliverFrame implements transport.FrameSink.
func (f FrameRecorder) DeliverFrame(h transport.Header, payload []byte) {
	r := f.Recorder
	r.enter("DeliverFrame", h)
	defer r.leave(h)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[h.Src]; ok {
		r.problemLocked("DeliverFrame(%+v) while the previous frame from rank %d is undelivered", h, h.Src)
	}
	if len(payload) != int(h.Len) {
		r.problemLocked("DeliverFrame(%+v) with %d bytes", h, len(payload))
	}
	var buf []byte
	if h.Kind == transport.KindData {
		buf = append(make([]byte, 0, len(payload)), payload...)
	}
	r.frames = append(r.frames, Frame{Header: h, Payload: buf})
	r.signalLocked()
}

// BatchRecorder is a FrameRecorder that is also a transport.FrameBatchSink:
// it records the frames of a DeliverFrames call one by one, as
// DeliverFrame would, and checks what the FrameSource hands out (data
// frames only, payloads of their length).
type BatchRecorder struct{ FrameRecorder }

// DeliverFrames implements transport.FrameBatchSink.
func (b BatchRecorder) DeliverFrames(src transport.FrameSource) {
	var h transport.Header
	for {
		payload, ok := src.NextFrame(&h)
		if !ok {
			return
		}
		if h.Kind != transport.KindData {
			b.mu.Lock()
			b.problemLocked("NextFrame handed out a %s frame %+v", h.Kind, h)
			b.mu.Unlock()
		}
		b.DeliverFrame(h, payload)
	}
}

// PeerLost implements transport.Sink.
func (r *Recorder) PeerLost(rank int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.problemLocked("PeerLost(%d, %v) after the endpoint was closed", rank, err)
	}
	r.lost = append(r.lost, Lost{Rank: rank, Err: err})
	r.signalLocked()
}

// MarkClosed records that the Recorder's endpoint has been closed: any later
// sink call is a violation.
func (r *Recorder) MarkClosed() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// Frames returns the frames delivered so far, in delivery order.
func (r *Recorder) Frames() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Frame(nil), r.frames...)
}

// LostPeers returns the PeerLost calls so far.
func (r *Recorder) LostPeers() []Lost {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Lost(nil), r.lost...)
}

// Violations returns the breaches of the Sink contract seen so far.
func (r *Recorder) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// Wait blocks until cond, evaluated on the frames and lost peers recorded so
// far, is true; it fails tb after WaitTimeout. cond runs with the Recorder
// locked: it must not call the Recorder or keep the slices.
func (r *Recorder) Wait(tb testing.TB, what string, cond func(frames []Frame, lost []Lost) bool) {
	tb.Helper()
	timer := time.NewTimer(WaitTimeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ok := cond(r.frames, r.lost)
		ch := r.changed
		n, l := len(r.frames), len(r.lost)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			tb.Fatalf("rank %d: timed out after %v waiting for %s (%d frames, %d lost peers recorded)",
				r.Rank, WaitTimeout, what, n, l)
		}
	}
}

// CountData returns how many KindData and KindAck frames from src are in
// frames (Bye frames are not counted).
func CountData(frames []Frame, src int) int {
	n := 0
	for _, f := range frames {
		if int(f.Header.Src) == src && f.Header.Kind != transport.KindBye {
			n++
		}
	}
	return n
}
