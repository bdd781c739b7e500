package tcp

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/transporttest"
)

// polledEndpoint is an Endpoint with goroutines that call Poll without a
// pause from its creation until its Close has returned, so that frames are
// read by pollers and by the readers, in turns that nobody controls.
type polledEndpoint struct {
	*Endpoint
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	hits atomic.Int64 // Poll calls that delivered
}

func startPollers(e *Endpoint, n int) *polledEndpoint {
	p := &polledEndpoint{Endpoint: e, stop: make(chan struct{})}
	for range n {
		p.wg.Add(1)
		go func() { // exits when Close stops it; joined by Close
			defer p.wg.Done()
			for {
				select {
				case <-p.stop:
					return
				default:
				}
				if e.Poll() {
					p.hits.Add(1)
				}
				runtime.Gosched() // let the other goroutines of the test run on few cores
			}
		}()
	}
	return p
}

// Close closes the endpoint while the pollers go on, then stops them.
func (p *polledEndpoint) Close() error {
	err := p.Endpoint.Close()
	p.once.Do(func() {
		// A few more polls after Close: they must do nothing.
		close(p.stop)
		p.wg.Wait()
	})
	return err
}

// TestConformancePolled runs the conformance suite with two goroutines
// polling every endpoint all the time.
func TestConformancePolled(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, sinks []transport.Sink) []transport.Endpoint {
		bk := newBook()
		eps := make([]transport.Endpoint, len(sinks))
		for i, s := range sinks {
			p := startPollers(listen(t, i, testToken, s, bk), 2)
			t.Cleanup(func() { p.Close() })
			eps[i] = p
		}
		return eps
	})
}

// TestConformanceShortNaps runs the suite with pollers and readers that nap
// for only a microsecond, so that they take turns as often as possible.
func TestConformanceShortNaps(t *testing.T) {
	old := nap
	nap = time.Microsecond
	defer func() { nap = old }()
	TestConformancePolled(t)
}

// TestPollDelivers: while a goroutine polls, the frames are handed on by
// Poll (the reader naps), complete and in order, small and large.
func TestPollDelivers(t *testing.T) {
	old := nap
	nap = time.Second
	defer func() { nap = old }()
	bk := newBook()
	rec1 := transporttest.NewRecorder(1)
	p := startPollers(listen(t, 1, testToken, rec1, bk), 1)
	defer p.Close()
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	sizes := []int{0, 8, 100, readBufferSize - 1, readBufferSize, 3*readBufferSize + 5, 1 << 20, 31, 4 << 20, 7}
	for i, n := range sizes {
		payload := make([]byte, n)
		for j := range payload {
			payload[j] = byte(i + j)
		}
		if err := e0.Send(data(0, 1, uint64(i), payload), payload); err != nil {
			t.Fatal(err)
		}
	}
	fs := waitFrames(t, rec1, len(sizes))
	for i, f := range fs {
		if f.Header.Seq != uint64(i) || len(f.Payload) != sizes[i] {
			t.Fatalf("frame %d: %+v with %d bytes, want seq %d, %d bytes", i, f.Header, len(f.Payload), i, sizes[i])
		}
		for j, b := range f.Payload {
			if b != byte(i+j) {
				t.Fatalf("frame %d: byte %d is %d, want %d", i, j, b, byte(i+j))
			}
		}
	}
	if p.hits.Load() == 0 {
		t.Errorf("Poll delivered nothing while it was polled all the time")
	}
}

// TestReaderWithoutPollers: frames that arrive after the last Poll are
// delivered by the reader, within a few naps.
func TestReaderWithoutPollers(t *testing.T) {
	bk := newBook()
	rec1 := transporttest.NewRecorder(1)
	e1 := listen(t, 1, testToken, rec1, bk)
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	for i := range 20 {
		// Poll a while (the reader learns that somebody polls and naps),
		// then stop and send: the reader must notice and read.
		deadline := time.Now().Add(time.Millisecond)
		for time.Now().Before(deadline) {
			e1.Poll()
		}
		if err := e0.Send(data(0, 1, uint64(i), []byte("x")), []byte("x")); err != nil {
			t.Fatal(err)
		}
		waitFrames(t, rec1, i+1)
	}
}

// TestPollAfterClose: Poll after Close returns false and calls no Sink method.
func TestPollAfterClose(t *testing.T) {
	bk := newBook()
	rec1 := transporttest.NewRecorder(1)
	e1 := listen(t, 1, testToken, rec1, bk)
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	if err := e0.Send(data(0, 1, 0, nil), nil); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, rec1, 1)
	e1.Close()
	rec1.MarkClosed()
	for range 100 {
		if e1.Poll() {
			t.Fatal("Poll after Close returned true")
		}
	}
	for _, v := range rec1.Violations() {
		t.Error(v)
	}
	var never Endpoint // Poll before any connection
	if never.Poll() {
		t.Error("Poll of an endpoint without connections returned true")
	}
}

// TestPeerKilledWhilePolled: the loss of a peer is reported once, after its
// last frames, also when pollers read them.
func TestPeerKilledWhilePolled(t *testing.T) {
	for range 20 {
		bk := newBook()
		rec0 := transporttest.NewRecorder(0)
		p := startPollers(listen(t, 0, testToken, rec0, bk), 2)
		c := rawDial(t, p.Addr(), 1, 0)
		for i := range 10 {
			writeFrame(t, c, data(1, 0, uint64(i), []byte("last words")), []byte("last words"))
		}
		c.Close()
		l := waitLost(t, rec0)
		if l.Rank != 1 || !errors.Is(l.Err, transport.ErrPeerLost) || !strings.Contains(l.Err.Error(), "connection closed without bye") {
			t.Errorf("PeerLost(%d, %v)", l.Rank, l.Err)
		}
		if fs := rec0.Frames(); len(fs) != 10 {
			t.Errorf("%d frames before the loss, want 10", len(fs))
		}
		p.Close()
		if n := len(rec0.LostPeers()); n != 1 {
			t.Errorf("%d PeerLost calls, want 1", n)
		}
	}
}

// TestPollAllocs: a small frame handed on by Poll allocates nothing, in
// Send or in Poll.
func TestPollAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	old := nap
	nap = time.Second // keep the reader out of the way
	defer func() { nap = old }()
	bk := newBook()
	sink := &countSink{buf: make([]byte, 64), arrived: make(chan struct{}, 1)}
	e1 := listen(t, 1, testToken, sink, bk)
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	payload := make([]byte, 8)
	h := data(0, 1, 0, payload)
	if err := e0.Send(h, payload); err != nil {
		t.Fatal(err)
	}
	sink.await(1)
	want := int64(1)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := e0.Send(h, payload); err != nil {
			t.Fatal(err)
		}
		want++
		for sink.n.Load() < want {
			e1.Poll()
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per small frame, want 0", allocs)
	}
}

// BenchmarkPingPong measures a half round trip of 8-byte frames between two
// endpoints of this process that wait by polling.
func BenchmarkPingPong(b *testing.B) {
	for _, size := range []int{8, 64 << 10, 1 << 20, 4 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			bk := newBook()
			s0 := &countSink{buf: make([]byte, size), arrived: make(chan struct{}, 1)}
			s1 := &countSink{buf: make([]byte, size), arrived: make(chan struct{}, 1)}
			e0 := listen(b, 0, testToken, s0, bk)
			e1 := listen(b, 1, testToken, s1, bk)
			payload := make([]byte, size)
			h01, h10 := data(0, 1, 0, payload), data(1, 0, 0, payload)
			if err := e0.Send(h01, payload); err != nil {
				b.Fatal(err)
			}
			s1.await(1)
			done := make(chan struct{})
			go func() { // echoes every frame; exits after b.N; joined through done
				defer close(done)
				for i := int64(2); i <= int64(b.N)+1; i++ {
					for s1.n.Load() < i {
						e1.Poll()
					}
					if err := e1.Send(h10, payload); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := int64(1); i <= int64(b.N); i++ {
				if err := e0.Send(h01, payload); err != nil {
					b.Fatal(err)
				}
				for s0.n.Load() < i {
					e0.Poll()
				}
			}
			b.StopTimer()
			<-done
		})
	}
}

// BenchmarkPollIdle measures one Poll of an endpoint with connections from
// 1 and 16 peers on which nothing arrives: what a waiting rank spends per
// round of its spin.
func BenchmarkPollIdle(b *testing.B) {
	for _, peers := range []int{1, 16} {
		b.Run(fmt.Sprintf("peers=%d", peers), func(b *testing.B) {
			bk := newBook()
			rec0 := transporttest.NewRecorder(0)
			e0 := listen(b, 0, testToken, rec0, bk)
			for r := 1; r <= peers; r++ {
				e := listen(b, r, testToken, transporttest.NewRecorder(r), bk)
				if err := e.Send(data(r, 0, 0, nil), nil); err != nil {
					b.Fatal(err)
				}
			}
			rec0.Wait(b, "a frame from every peer", func(fs []transporttest.Frame, _ []transporttest.Lost) bool { return len(fs) == peers })
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if e0.Poll() {
					b.Fatal("Poll delivered a frame nobody sent")
				}
			}
		})
	}
}

// TestPollReportsPartialFrame: Poll reports progress while a large payload
// streams in, before the frame is whole, so that a waiter keeps polling
// (package mpi restarts its spinning budget on progress) instead of
// parking halfway through and paying a wake-up at the end.
func TestPollReportsPartialFrame(t *testing.T) {
	const size = 64 << 20 // more than any socket buffer holds
	bk := newBook()
	s1 := &countSink{buf: make([]byte, size), arrived: make(chan struct{}, 1)}
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	e1 := listen(t, 1, testToken, s1, bk)
	payload := make([]byte, size)
	sent := make(chan error, 1)
	go func() { sent <- e0.Send(data(0, 1, 0, payload), payload) }() // joined below
	// Polls that made progress while the frame was incomplete:
	partial := 0
	for s1.n.Load() == 0 {
		if e1.Poll() && s1.n.Load() == 0 {
			partial++
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if partial == 0 {
		t.Fatalf("Poll reported no progress while a %d-byte frame streamed in", size)
	}
	t.Logf("%d Polls made progress before the frame was whole", partial)
}
