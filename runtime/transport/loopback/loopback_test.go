package loopback

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/transporttest"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, sinks []transport.Sink) []transport.Endpoint {
		if len(sinks) != 1 {
			t.Skip("loopback reaches only its own rank")
		}
		return []transport.Endpoint{New(0, sinks[0])}
	})
}

func TestWrongRank(t *testing.T) {
	rec := transporttest.NewRecorder(2)
	e := New(2, rec)
	defer e.Close()
	for _, h := range []transport.Header{
		{Kind: transport.KindData, Src: 2, Dst: 3},
		{Kind: transport.KindData, Src: 1, Dst: 2},
	} {
		err := e.Send(h, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "loopback: ") {
			t.Errorf("Send(%+v) = %v, want a loopback: error", h, err)
		}
	}
	if err := e.Send(transport.Header{Kind: transport.KindBye, Src: 2, Dst: 2}, nil); err == nil {
		t.Error("Send of a bye frame succeeded")
	}
	if n := len(rec.Frames()); n != 0 {
		t.Errorf("%d frames delivered, want 0", n)
	}
}

// ackingSink answers every data frame with an ack sent from inside Deliver,
// as the mpi engine does for synchronous-mode messages.
type ackingSink struct {
	*transporttest.Recorder
	ep *Endpoint
}

func (s *ackingSink) Deliver(h transport.Header, buf []byte) {
	s.Recorder.Deliver(h, buf)
	if h.Kind == transport.KindData {
		ack := transport.Header{Kind: transport.KindAck, Src: h.Dst, Dst: h.Src, Seq: h.Seq}
		if err := s.ep.Send(ack, nil); err != nil {
			panic(err) // test only: surfaces as a test failure
		}
	}
}

// TestReentrantSend: a sink that sends to its own rank from Deliver must not
// deadlock, and the ack comes after the data frame it answers.
func TestReentrantSend(t *testing.T) {
	s := &ackingSink{Recorder: transporttest.NewRecorder(0)}
	s.ep = New(0, s)
	const count = 100
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() { // exits after count sends; joined by wg
			defer wg.Done()
			for i := range count {
				h := transport.Header{Kind: transport.KindData, Dst: 0, Tag: int32(g), Seq: uint64(g*count + i), Len: 3}
				if err := s.ep.Send(h, []byte{1, 2, 3}); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.ep.Close(); err != nil {
		t.Fatal(err)
	}
	fs := s.Frames()
	if len(fs) != 2*4*count {
		t.Fatalf("%d frames, want %d", len(fs), 2*4*count)
	}
	seen := make(map[uint64]bool)
	for _, f := range fs {
		switch f.Header.Kind {
		case transport.KindData:
			seen[f.Header.Seq] = true
		case transport.KindAck:
			if !seen[f.Header.Seq] {
				t.Fatalf("ack %d before its data frame", f.Header.Seq)
			}
		}
	}
	for _, v := range s.Violations() {
		t.Error(v)
	}
}

type shortSink struct{ *transporttest.Recorder }

func (shortSink) Buffer(h transport.Header) []byte { return make([]byte, h.Len/2) }

func TestShortBuffer(t *testing.T) {
	e := New(0, shortSink{transporttest.NewRecorder(0)})
	err := e.Send(transport.Header{Kind: transport.KindData, Len: 4}, make([]byte, 4))
	if err == nil || errors.Is(err, transport.ErrClosed) {
		t.Errorf("Send into a short sink buffer = %v, want an error", err)
	}
}

func BenchmarkSend(b *testing.B) {
	buf := make([]byte, 64)
	e := New(0, discard{buf})
	h := transport.Header{Kind: transport.KindData, Len: 64}
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if err := e.Send(h, buf); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{ buf []byte }

func (d discard) Buffer(h transport.Header) []byte { return d.buf[:h.Len] }
func (discard) Deliver(transport.Header, []byte)   {}
func (discard) PeerLost(int, error)                {}
