package tcp

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/auth"
	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/transporttest"
)

// connCount returns how many established connections e holds.
func connCount(e *Endpoint) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns)
}

// TestOneConnectionBothWays: a rank answers on the connection its peer
// dialed instead of dialing one of its own, so a ping-pong's
// acknowledgements ride on the replies (two one-way connections cost a
// pure ACK segment per message, about 2 µs of a 4 µs round trip here).
func TestOneConnectionBothWays(t *testing.T) {
	bk := newBook()
	rec0, rec1 := transporttest.NewRecorder(0), transporttest.NewRecorder(1)
	e0 := listen(t, 0, testToken, rec0, bk)
	e1 := listen(t, 1, testToken, rec1, bk)
	for i := range 3 {
		if err := e0.Send(data(0, 1, uint64(i), []byte("ping")), []byte("ping")); err != nil {
			t.Fatal(err)
		}
		waitFrames(t, rec1, i+1)
		if err := e1.Send(data(1, 0, uint64(i), []byte("pong")), []byte("pong")); err != nil {
			t.Fatal(err)
		}
		waitFrames(t, rec0, i+1)
	}
	if n := bk.calls.Load(); n != 1 {
		t.Errorf("Resolve called %d times, want 1 (rank 1 should answer on rank 0's connection)", n)
	}
	if n0, n1 := connCount(e0), connCount(e1); n0 != 1 || n1 != 1 {
		t.Errorf("connections: rank 0 holds %d, rank 1 holds %d; want 1 each", n0, n1)
	}
	for r, rec := range []*transporttest.Recorder{rec0, rec1} {
		for i, f := range rec.Frames() {
			if f.Header.Seq != uint64(i) {
				t.Errorf("rank %d: frame %d has seq %d", r, i, f.Header.Seq)
			}
		}
	}
}

// TestCrossedDials: two ranks whose first Sends to each other dial at the
// same moment end up with one connection, the lower rank's; the higher
// rank's dial is refused and its Send waits for that connection. Resolve
// holds both dials until both have begun, so the crossing always happens.
func TestCrossedDials(t *testing.T) {
	for round := range 5 {
		bk := newBook()
		var both sync.WaitGroup
		both.Add(2)
		resolve := func(ctx context.Context, rank int) (string, error) {
			both.Done()
			both.Wait()
			return bk.resolve(ctx, rank)
		}
		recs := []*transporttest.Recorder{transporttest.NewRecorder(0), transporttest.NewRecorder(1)}
		eps := make([]*Endpoint, 2)
		for r := range eps {
			e, err := Listen(context.Background(), Config{Rank: r, Token: testToken, Sink: recs[r], Resolve: resolve})
			if err != nil {
				t.Fatal(err)
			}
			bk.set(r, e.Addr())
			t.Cleanup(func() { e.Close() })
			eps[r] = e
		}
		errs := make(chan error, 2)
		for r := range eps {
			go func() { // exits after one Send; joined through errs
				msg := []byte("first")
				errs <- eps[r].Send(data(r, 1-r, uint64(round), msg), msg)
			}()
		}
		for range eps {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: Send: %v", round, err)
			}
		}
		waitFrames(t, recs[0], 1)
		waitFrames(t, recs[1], 1)
		if n0, n1 := connCount(eps[0]), connCount(eps[1]); n0 != 1 || n1 != 1 {
			t.Errorf("round %d: connections: rank 0 holds %d, rank 1 holds %d; want 1 each", round, n0, n1)
		}
		v, _ := eps[1].out.Load(0)
		if c := v.(*conn); c.dialed {
			t.Errorf("round %d: rank 1 sends on the connection it dialed; want rank 0's", round)
		}
		for _, e := range eps {
			e.Close()
		}
	}
}

// TestCrossedDialNeverArrives: a lower rank that refuses our connection
// because it dials us, but whose connection never comes, fails the Send
// within the handshake timeout with an error that says so.
func TestCrossedDialNeverArrives(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() { // rank 0 that refuses with verdictRetry; exits when the listener closes; joined by cleanup
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if auth.Server(c, testToken, authLabel) == nil {
				var b [helloSize]byte
				if _, err := io.ReadFull(c, b[:]); err == nil {
					c.Write([]byte{verdictRetry})
				}
			}
			c.Close()
		}
	}()
	bk := newBook()
	bk.set(0, ln.Addr().String())
	e1, err := Listen(context.Background(), Config{Rank: 1, Token: testToken, Sink: transporttest.NewRecorder(1),
		Resolve: bk.resolve, HandshakeTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	err = e1.Send(data(1, 0, 0, nil), nil)
	if !errors.Is(err, transport.ErrPeerLost) || !strings.Contains(err.Error(), "refused our connection") {
		t.Fatalf("Send = %v, want ErrPeerLost saying the peer refused our connection", err)
	}
}

// TestByeOnSharedConnection: a rank that only answered on its peer's
// connection still closes in order: the peer gets its data and then its
// Bye, once, and is not told it was lost.
func TestByeOnSharedConnection(t *testing.T) {
	bk := newBook()
	rec0, rec1 := transporttest.NewRecorder(0), transporttest.NewRecorder(1)
	e0 := listen(t, 0, testToken, rec0, bk)
	e1 := listen(t, 1, testToken, rec1, bk)
	if err := e0.Send(data(0, 1, 0, nil), nil); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, rec1, 1)
	if err := e1.Send(data(1, 0, 1, nil), nil); err != nil {
		t.Fatal(err)
	}
	e1.Close()
	rec1.MarkClosed()
	fs := waitFrames(t, rec0, 2)
	if len(fs) != 2 || fs[0].Header.Kind != transport.KindData || fs[1].Header.Kind != transport.KindBye {
		t.Errorf("rank 0 got %v, want data then bye", fs)
	}
	e0.Close()
	if l := rec0.LostPeers(); len(l) != 0 {
		t.Errorf("rank 0 told of lost peers %v after an orderly close", l)
	}
	if fs := rec0.Frames(); len(fs) != 2 {
		t.Errorf("rank 0 got %d frames, want 2", len(fs))
	}
}
