package inproc

import (
	"errors"
	"sync"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/transporttest"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, sinks []transport.Sink) []transport.Endpoint {
		hub := NewHub(len(sinks))
		eps := make([]transport.Endpoint, len(sinks))
		for i, s := range sinks {
			eps[i] = hub.Endpoint(i, s)
		}
		return eps
	})
}

// TestSendBeforeAttach: a Send to a rank that has not attached yet waits for
// it instead of failing.
func TestSendBeforeAttach(t *testing.T) {
	hub := NewHub(2)
	r0 := transporttest.NewRecorder(0)
	e0 := hub.Endpoint(0, r0)
	defer e0.Close()
	sent := make(chan error, 1)
	go func() { // exits when Send returns (after rank 1 attaches); joined through sent
		sent <- e0.Send(transport.Header{Kind: transport.KindData, Src: 0, Dst: 1, Len: 2}, []byte{7, 8})
	}()
	r1 := transporttest.NewRecorder(1)
	e1 := hub.Endpoint(1, r1)
	defer e1.Close()
	if err := <-sent; err != nil {
		t.Fatalf("Send before attach: %v", err)
	}
	fs := r1.Frames()
	if len(fs) != 1 || string(fs[0].Payload) != "\x07\x08" {
		t.Fatalf("rank 1 got %+v", fs)
	}
}

// TestCloseWhileWaitingForAttach: a Send waiting for an absent rank returns
// ErrClosed when its own endpoint closes.
func TestCloseWhileWaitingForAttach(t *testing.T) {
	hub := NewHub(2)
	e0 := hub.Endpoint(0, transporttest.NewRecorder(0))
	sent := make(chan error, 1)
	go func() { // exits when Send returns (on Close below); joined through sent
		sent <- e0.Send(transport.Header{Kind: transport.KindAck, Src: 0, Dst: 1}, nil)
	}()
	e0.Close()
	if err := <-sent; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send waiting for attach after Close = %v, want ErrClosed", err)
	}
}

func TestSendToClosedRank(t *testing.T) {
	hub := NewHub(2)
	e0 := hub.Endpoint(0, transporttest.NewRecorder(0))
	e1 := hub.Endpoint(1, transporttest.NewRecorder(1))
	defer e0.Close()
	e1.Close()
	err := e0.Send(transport.Header{Kind: transport.KindAck, Src: 0, Dst: 1}, nil)
	if !errors.Is(err, transport.ErrPeerLost) {
		t.Fatalf("Send to closed rank = %v, want ErrPeerLost", err)
	}
}

func TestBadFrames(t *testing.T) {
	hub := NewHub(2)
	rec := transporttest.NewRecorder(1)
	e0 := hub.Endpoint(0, transporttest.NewRecorder(0))
	e1 := hub.Endpoint(1, rec)
	defer e0.Close()
	defer e1.Close()
	for _, h := range []transport.Header{
		{Kind: transport.KindData, Src: 1, Dst: 1},         // wrong source
		{Kind: transport.KindData, Src: 0, Dst: 2},         // no such rank
		{Kind: transport.KindData, Src: 0, Dst: -1},        // no such rank
		{Kind: transport.KindBye, Src: 0, Dst: 1},          // reserved to Close
		{Kind: transport.Kind(9), Src: 0, Dst: 1},          // unknown
		{Kind: transport.KindData, Src: 0, Dst: 1, Len: 1}, // missing payload
	} {
		if err := e0.Send(h, nil); err == nil {
			t.Errorf("Send(%+v) succeeded", h)
		}
	}
	if n := len(rec.Frames()); n != 0 {
		t.Errorf("%d frames delivered, want 0", n)
	}
}

func TestAttachMisuse(t *testing.T) {
	hub := NewHub(1)
	hub.Endpoint(0, transporttest.NewRecorder(0))
	for name, f := range map[string]func(){
		"twice":        func() { hub.Endpoint(0, transporttest.NewRecorder(0)) },
		"out of range": func() { hub.Endpoint(1, transporttest.NewRecorder(1)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Endpoint did not panic", name)
				}
			}()
			f()
		}()
	}
}

// pingSink answers each data frame from inside Deliver, re-entering Send on
// the receiving rank, as synchronous-mode acks do.
type pingSink struct {
	*transporttest.Recorder
	ep *Endpoint
}

func (s *pingSink) Deliver(h transport.Header, buf []byte) {
	s.Recorder.Deliver(h, buf)
	if h.Kind == transport.KindData {
		ack := transport.Header{Kind: transport.KindAck, Src: h.Dst, Dst: h.Src, Seq: h.Seq}
		if err := s.ep.Send(ack, nil); err != nil && !errors.Is(err, transport.ErrClosed) {
			panic(err) // test only
		}
	}
}

// TestReentrantCrossSends: two ranks flood each other while each sink acks
// from inside Deliver. Lanes that blocked on each other would deadlock here.
func TestReentrantCrossSends(t *testing.T) {
	hub := NewHub(2)
	sinks := []*pingSink{{Recorder: transporttest.NewRecorder(0)}, {Recorder: transporttest.NewRecorder(1)}}
	for i, s := range sinks {
		s.ep = hub.Endpoint(i, s)
	}
	const count = 2000
	var wg sync.WaitGroup
	for i := range 2 {
		for g := range 3 {
			wg.Add(1)
			go func() { // exits after count sends; joined by wg
				defer wg.Done()
				for k := range count {
					h := transport.Header{Kind: transport.KindData, Src: int32(i), Dst: int32(1 - i), Tag: int32(g), Seq: uint64(k), Len: 1}
					if err := sinks[i].ep.Send(h, []byte{byte(k)}); err != nil {
						t.Errorf("Send: %v", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for i, s := range sinks {
		s.Wait(t, "all data and acks", func(fs []transporttest.Frame, _ []transporttest.Lost) bool {
			return len(fs) == 2*3*count
		})
		for _, v := range s.Violations() {
			t.Errorf("rank %d: %s", i, v)
		}
	}
	for _, s := range sinks {
		s.ep.Close()
	}
}

func BenchmarkSend(b *testing.B) {
	for _, size := range []int{8, 64 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			hub := NewHub(2)
			e0 := hub.Endpoint(0, discard{})
			e1 := hub.Endpoint(1, discard{make([]byte, size)})
			defer e0.Close()
			defer e1.Close()
			payload := make([]byte, size)
			h := transport.Header{Kind: transport.KindData, Src: 0, Dst: 1, Len: uint32(size)}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := e0.Send(h, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return itoa(n>>20) + "MiB"
	case n >= 1<<10:
		return itoa(n>>10) + "KiB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

type discard struct{ buf []byte }

func (d discard) Buffer(h transport.Header) []byte { return d.buf[:h.Len] }
func (discard) Deliver(transport.Header, []byte)   {}
func (discard) PeerLost(int, error)                {}
