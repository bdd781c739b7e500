//go:build linux

package shm

import (
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/transporttest"
)

// quietSink is a Recorder that says it is quiet while quiet is set.
type quietSink struct {
	*transporttest.Recorder
	quiet atomic.Bool
}

func (s *quietSink) Quiet() bool { return s.quiet.Load() }

func newQuietSinks(n int) ([]*quietSink, []transport.Sink) {
	qs := make([]*quietSink, n)
	sinks := make([]transport.Sink, n)
	for i := range qs {
		qs[i] = &quietSink{Recorder: transporttest.NewRecorder(i)}
		qs[i].quiet.Store(true)
		sinks[i] = qs[i]
	}
	return qs, sinks
}

func dataFrame(src, dst int, ctx uint32, tag int32, typ uint8, payload []byte) transport.Header {
	return transport.Header{Kind: transport.KindData, Type: typ, Context: ctx, Src: int32(src), Dst: int32(dst), Tag: tag, Len: uint32(len(payload))}
}

func forever() bool { return true }

// TestTake: a frame that fits what the receiver waits for is copied into
// its buffer and never reaches the Sink; any other frame is refused and
// reaches the Sink, in order.
func TestTake(t *testing.T) {
	qs, sinks := newQuietSinks(2)
	eps := makeEndpoints(t, t.TempDir(), sinks)
	send := func(tag int32, typ uint8, p []byte) {
		t.Helper()
		if err := eps[1].Send(dataFrame(1, 0, 4, tag, typ, p), p); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 16)
	var h transport.Header

	send(7, 3, []byte("hello"))
	if got := eps[0].Take(1, 4, 7, 3, buf, &h, forever); got != Took || string(buf[:h.Len]) != "hello" || h.Tag != 7 || h.Src != 1 {
		t.Fatalf("Take = %d, %q, header %+v; want Took, hello", got, buf[:h.Len], h)
	}
	send(8, 3, []byte("x"))
	if got := eps[0].Take(1, 4, AnyTagForTest, 3, buf, &h, forever); got != Took || h.Tag != 8 {
		t.Fatalf("Take with any tag = %d, tag %d; want Took, 8", got, h.Tag)
	}

	// Refused: another tag, another type, another context, too long, a
	// synchronous send, and any frame while the Sink is not quiet.
	refused := []struct {
		name string
		h    transport.Header
		p    []byte
	}{
		{"tag", dataFrame(1, 0, 4, 9, 3, []byte("a")), []byte("a")},
		{"type", dataFrame(1, 0, 4, 7, 2, []byte("b")), []byte("b")},
		{"context", dataFrame(1, 0, 5, 7, 3, []byte("c")), []byte("c")},
		{"length", dataFrame(1, 0, 4, 7, 3, make([]byte, 17)), make([]byte, 17)},
		{"sync", func() transport.Header {
			h := dataFrame(1, 0, 4, 7, 3, []byte("d"))
			h.Flags, h.Seq = transport.FlagSync, 1
			return h
		}(), []byte("d")},
		{"not quiet", dataFrame(1, 0, 4, 7, 3, []byte("e")), []byte("e")},
	}
	for i, c := range refused {
		qs[0].quiet.Store(c.name != "not quiet")
		if err := eps[1].Send(c.h, c.p); err != nil {
			t.Fatal(err)
		}
		if got := eps[0].Take(1, 4, 7, 3, buf, &h, forever); got != TakeNo {
			t.Fatalf("%s: Take = %d, want TakeNo", c.name, got)
		}
		// The refused frame is next for the Sink.
		qs[0].Wait(t, c.name, func(f []transporttest.Frame, _ []transporttest.Lost) bool {
			return transporttest.CountData(f, 1) == i+1
		})
		if f := qs[0].Frames(); f[i].Header.Tag != c.h.Tag || string(f[i].Payload) != string(c.p) {
			t.Fatalf("%s: the Sink got %+v, want the refused frame", c.name, f[i])
		}
	}

	// Nothing arrives: spin decides when to stop.
	qs[0].quiet.Store(true)
	looks := 0
	if got := eps[0].Take(1, 4, 7, 3, buf, &h, func() bool { looks++; return looks < 5 }); got != TakeEmpty || looks != 5 {
		t.Fatalf("empty ring: Take = %d after %d looks, want TakeEmpty after 5", got, looks)
	}
	if v := qs[0].Violations(); len(v) > 0 {
		t.Fatal(v)
	}
}

// AnyTagForTest is the tag wildcard of Take.
const AnyTagForTest = -1

// TestTakeStream takes many times a ring's worth of frames one at a time
// while the sender streams them: the space Take consumes is handed back
// (lazily), so the sender never stalls for good, and every frame arrives
// once, in order.
func TestTakeStream(t *testing.T) {
	qs, sinks := newQuietSinks(2)
	eps := makeEndpoints(t, t.TempDir(), sinks)
	const payload = 1000
	n := int(4*ringSize(2)) / payload
	done := make(chan error, 1)
	go func() {
		p := make([]byte, payload)
		for i := range n {
			binary.LittleEndian.PutUint64(p, uint64(i))
			if err := eps[1].Send(dataFrame(1, 0, 1, 1, 1, p), p); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	buf := make([]byte, payload)
	var h transport.Header
	for i := range n {
		switch got := eps[0].Take(1, 1, 1, 1, buf, &h, forever); {
		case got != Took:
			t.Fatalf("frame %d: Take = %d", i, got)
		case binary.LittleEndian.Uint64(buf) != uint64(i):
			t.Fatalf("frame %d: got frame %d", i, binary.LittleEndian.Uint64(buf))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f := qs[0].Frames(); len(f) != 0 {
		t.Fatalf("the Sink got %d frames, want none", len(f))
	}
}

// TestTakeServesOthers: while Take waits for one peer, frames from another
// reach the Sink.
func TestTakeServesOthers(t *testing.T) {
	qs, sinks := newQuietSinks(3)
	eps := makeEndpoints(t, t.TempDir(), sinks)
	p := []byte("from 2")
	if err := eps[2].Send(dataFrame(2, 0, 1, 1, 1, p), p); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	var h transport.Header
	seen := false
	spin := func() bool {
		if !seen && transporttest.CountData(qs[0].Frames(), 2) == 1 {
			seen = true // now let rank 1 send what Take waits for
			q := []byte("from 1")
			if err := eps[1].Send(dataFrame(1, 0, 1, 1, 1, q), q); err != nil {
				t.Error(err)
				return false
			}
		}
		return true
	}
	if got := eps[0].Take(1, 1, 1, 1, buf, &h, spin); got != Took || string(buf[:h.Len]) != "from 1" {
		t.Fatalf("Take = %d, %q; want Took, from 1", got, buf[:h.Len])
	}
}
