//go:build linux

package shm

import (
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/transporttest"
)

// quietSink is a Recorder that is quiet, as the engine is, while quiet is
// set and it holds no frame beyond the first acked: frames the endpoint's
// reader drained into it before a Take looked are "unexpected" until the
// test acks them.
type quietSink struct {
	*transporttest.Recorder
	quiet atomic.Bool
	acked atomic.Int64
}

func (s *quietSink) Quiet() bool {
	return s.quiet.Load() && int64(len(s.Frames())) == s.acked.Load()
}

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

func forever() (more, yield bool) { return true, false }

// yielding is forever with sched_yield between looks, as when the host is
// oversubscribed.
func yielding() (more, yield bool) { return true, true }

// sendWhileTaking calls Take on eps[0] for a frame from rank 1 and has
// rank 1 send h, p from Take's first spin, while Take holds the drain lock
// (before that, the endpoint's reader could drain the frame to the Sink).
func sendWhileTaking(t *testing.T, eps []*Endpoint, tag int32, typ uint8, buf []byte, got *transport.Header, h transport.Header, p []byte) int {
	t.Helper()
	sent := false
	for {
		res := eps[0].Take(1, 4, tag, typ, buf, got, func() (bool, bool) {
			if !sent {
				sent = true
				if err := eps[1].Send(h, p); err != nil {
					t.Error(err)
					return false, false
				}
			}
			return true, false
		})
		if sent {
			return res
		}
		// The reader held the drain lock: Take gave up before waiting.
	}
}

// TestTake: a frame that fits what the receiver waits for is copied into
// its buffer and never reaches the Sink; any other frame is refused and
// reaches the Sink, in order.
func TestTake(t *testing.T) {
	qs, sinks := newQuietSinks(2)
	eps := makeEndpoints(t, t.TempDir(), sinks)
	buf := make([]byte, 16)
	var h transport.Header

	p := []byte("hello")
	if got := sendWhileTaking(t, eps, 7, 3, buf, &h, dataFrame(1, 0, 4, 7, 3, p), p); got != Took || string(buf[:h.Len]) != "hello" || h.Tag != 7 || h.Src != 1 {
		t.Fatalf("Take = %d, %q, header %+v; want Took, hello", got, buf[:h.Len], h)
	}
	p = []byte("x")
	if got := sendWhileTaking(t, eps, anyTag, 3, buf, &h, dataFrame(1, 0, 4, 8, 3, p), p); got != Took || h.Tag != 8 {
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
	}
	for i, c := range refused {
		if got := sendWhileTaking(t, eps, 7, 3, buf, &h, c.h, c.p); got != TakeNo {
			t.Fatalf("%s: Take = %d, want TakeNo", c.name, got)
		}
		// The refused frame is next for the Sink.
		qs[0].Wait(t, c.name, func(f []transporttest.Frame, _ []transporttest.Lost) bool {
			return transporttest.CountData(f, 1) == i+1
		})
		qs[0].acked.Add(1)
		if f := qs[0].Frames(); f[i].Header.Tag != c.h.Tag || string(f[i].Payload) != string(c.p) {
			t.Fatalf("%s: the Sink got %+v, want the refused frame", c.name, f[i])
		}
	}
	qs[0].quiet.Store(false)
	if got := eps[0].Take(1, 4, 7, 3, buf, &h, forever); got != TakeNo {
		t.Fatalf("Sink not quiet: Take = %d, want TakeNo", got)
	}

	// Nothing arrives: spin decides when to stop.
	qs[0].quiet.Store(true)
	looks, got := 0, TakeNo
	for looks == 0 { // until the reader does not hold the drain lock
		got = eps[0].Take(1, 4, 7, 3, buf, &h, func() (bool, bool) { looks++; return looks < 5, false })
	}
	if got != TakeEmpty || looks != 5 {
		t.Fatalf("empty ring: Take = %d after %d looks, want TakeEmpty after 5", got, looks)
	}
	if v := qs[0].Violations(); len(v) > 0 {
		t.Fatal(v)
	}
}

// anyTag is the tag wildcard of Take.
const anyTag = -1

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
	// Frames the endpoint's reader drains to the Sink (when Take does not
	// hold the drain lock) make it unquiet; they are taken from there, as
	// the engine would match them, before Take is asked again.
	buf := make([]byte, payload)
	var h transport.Header
	took := 0
	for next := 0; next < n; {
		if f := qs[0].Frames(); int64(len(f)) > qs[0].acked.Load() {
			for _, fr := range f[qs[0].acked.Load():] {
				if got := binary.LittleEndian.Uint64(fr.Payload); got != uint64(next) {
					t.Fatalf("frame %d: the Sink got frame %d", next, got)
				}
				next++
				qs[0].acked.Add(1)
			}
			continue
		}
		switch got := eps[0].Take(1, 1, 1, 1, buf, &h, yielding); {
		case got == TakeNo:
			continue // the reader drained the next frame meanwhile
		case got != Took:
			t.Fatalf("frame %d: Take = %d", next, got)
		case binary.LittleEndian.Uint64(buf) != uint64(next):
			t.Fatalf("frame %d: Take got frame %d", next, binary.LittleEndian.Uint64(buf))
		}
		next++
		took++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took == 0 {
		t.Fatal("Take took no frame")
	}
}

// TestTakeServesOthers: while Take waits for one peer, frames from another
// reach the Sink.
func TestTakeServesOthers(t *testing.T) {
	qs, sinks := newQuietSinks(3)
	eps := makeEndpoints(t, t.TempDir(), sinks)
	send := func(src int, p string) bool {
		if err := eps[src].Send(dataFrame(src, 0, 1, 1, 1, []byte(p)), []byte(p)); err != nil {
			t.Error(err)
			return false
		}
		return true
	}
	buf := make([]byte, 8)
	var h transport.Header
	// Sent while Take holds the drain lock, so that Take, not the
	// reader, delivers it.
	sent2, sent1 := false, false
	// Yielding between looks, as on an oversubscribed host, where the
	// other rings are looked at only every SpinEvery looks.
	spin := func() (more, yield bool) {
		switch {
		case !sent2:
			sent2 = true
			return send(2, "from 2"), true
		case !sent1 && transporttest.CountData(qs[0].Frames(), 2) == 1:
			// As if a posted receive took it, leaving the Sink quiet;
			// now let rank 1 send what Take waits for.
			qs[0].acked.Store(1)
			sent1 = true
			return send(1, "from 1"), true
		}
		return true, true
	}
	if got := eps[0].Take(1, 1, 1, 1, buf, &h, spin); got != Took || string(buf[:h.Len]) != "from 1" {
		t.Fatalf("Take = %d, %q; want Took, from 1", got, buf[:h.Len])
	}
}

// takeWhileSending calls Take on eps[0] for a frame from rank 1 and has
// rank 1 send h, p on a goroutine of its own, started from Take's first
// spin (while Take holds the drain lock): a payload above the eager limit
// is read by the receiver while the Send waits. It returns Take's outcome
// once the Send has returned, and the Send's error.
func takeWhileSending(t *testing.T, eps []*Endpoint, buf []byte, got *transport.Header, h transport.Header, p []byte) (int, error) {
	t.Helper()
	sendErr := make(chan error, 1)
	for {
		started := false
		res := eps[0].Take(1, 4, h.Tag, h.Type, buf, got, func() (bool, bool) {
			if !started {
				started = true
				go func() { sendErr <- eps[1].Send(h, p) }() // joined below
			}
			return true, false
		})
		if started {
			return res, <-sendErr
		}
	}
}

// TestTakeCMA: a payload above the eager limit, posted for cross-memory
// attach, is read by Take straight into the receiver's buffer (the Sink
// sees nothing); when the kernel refuses the read, Take leaves the frame
// to the Sink, which gets it whole through the ring.
func TestTakeCMA(t *testing.T) {
	qs, sinks := newQuietSinks(2)
	eps := makeEndpoints(t, t.TempDir(), sinks)
	p := make([]byte, eagerLimit+4096) // above the eager limit, below the split copy's
	if len(p) >= splitMin {
		t.Fatalf("a %d-byte payload would be split; the test needs eagerLimit < splitMin-4096", len(p))
	}
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	buf := make([]byte, len(p)+100)
	var h transport.Header
	res, err := takeWhileSending(t, eps, buf, &h, dataFrame(1, 0, 4, 7, 3, p), p)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res != Took || int(h.Len) != len(p) || string(buf[:h.Len]) != string(p) {
		t.Fatalf("Take = %d, %d bytes, equal %v; want Took, the %d-byte payload", res, h.Len, string(buf[:h.Len]) == string(p), len(p))
	}
	if n := len(qs[0].Frames()); n != 0 {
		t.Fatalf("the Sink got %d frames; want none", n)
	}

	withHook(t, &processVMReadv, refuseCMA)
	withHook(t, &processVMWritev, refuseCMA)
	clear(buf)
	p[0]++
	res, err = takeWhileSending(t, eps, buf, &h, dataFrame(1, 0, 4, 8, 3, p), p)
	if err != nil {
		t.Fatalf("Send with cross-memory attach refused: %v", err)
	}
	if res != TakeNo {
		t.Fatalf("Take with cross-memory attach refused = %d; want TakeNo", res)
	}
	qs[0].Wait(t, "the refused frame", func(f []transporttest.Frame, _ []transporttest.Lost) bool {
		return transporttest.CountData(f, 1) == 1
	})
	if f := qs[0].Frames()[0]; f.Header.Tag != 8 || string(f.Payload) != string(p) {
		t.Fatalf("the Sink got tag %d, %d bytes, equal %v; want tag 8 and the payload", f.Header.Tag, len(f.Payload), string(f.Payload) == string(p))
	}
}
