package mpi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/inproc"
	"github.com/gorun-hpc/gorun/runtime/transport/tcp"
)

// world3 starts three in-process ranks and returns their worlds.
func world3(t *testing.T) []*Comm {
	t.Helper()
	hub, store := inproc.NewHub(3), rendezvous.NewMemStore(3)
	comms := make([]*Comm, 3)
	errs := make(chan error, 3)
	for r := range 3 {
		go func() { // joined through errs
			c, err := Init(t.Context(), WithInProcess(InProcess{Hub: hub, Store: store, Rank: r, Size: 3}))
			comms[r] = c
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, c := range comms {
			c.w.close()
		}
	})
	return comms
}

// TestPeerLostFailsWaiters: when the transport reports a peer lost, every
// operation waiting on it returns ErrPeerLost instead of hanging: receives
// from it and from AnySource, probes, and synchronous sends to it; later
// operations on it fail at once, but messages it sent before dying are
// still delivered.
func TestPeerLostFailsWaiters(t *testing.T) {
	cs := world3(t)
	c := cs[0]
	// Rank 1 sent one message before it "died".
	if err := Send(cs[1], []int{41}, 0, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := Probe(c, 1, 9); err != nil { // it has arrived
		t.Fatal(err)
	}

	type op struct {
		name string
		run  func() error
	}
	ops := []op{
		{"recv from 1", func() error { _, err := Recv(c, []int{0}, 1, 0); return err }},
		{"recv from any", func() error { _, err := Recv(c, []int{0}, AnySource, 0); return err }},
		{"probe 1", func() error { _, err := Probe(c, 1, 3); return err }},
		{"ssend to 1", func() error { return Ssend(c, []int{1}, 1, 0) }},
	}
	errs := make(chan error, len(ops))
	for _, o := range ops {
		go func() { // joined through errs
			err := o.run()
			errs <- fmt.Errorf("%s: %w", o.name, err)
		}()
	}
	// The waiters are blocked: nothing can complete them but the loss. The
	// loss fails the ones already waiting and every later one alike, so the
	// test does not depend on which have started.
	c.w.eng.PeerLost(1, fmt.Errorf("test: %w", transport.ErrPeerLost))
	for range ops {
		if err := <-errs; !errors.Is(err, ErrPeerLost) {
			t.Errorf("%v; want ErrPeerLost", err)
		}
	}
	if err := Send(c, []int{1}, 1, 0); !errors.Is(err, ErrPeerLost) {
		t.Errorf("send to a lost peer: %v; want ErrPeerLost", err)
	}
	got := []int{0}
	if _, err := Recv(c, got, 1, 9); err != nil || got[0] != 41 {
		t.Errorf("message sent before the loss: %v, %v; want 41", got, err)
	}
	// Traffic with the surviving rank still works.
	if err := Send(cs[2], []int{7}, 0, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := Recv(c, got, 2, 1); err != nil || got[0] != 7 {
		t.Errorf("recv from a live rank after the loss: %v, %v", got, err)
	}
}

// tcpWorld is rank 0 of a two-rank world whose route to rank 1 is a TCP
// endpoint that cannot reach it: looking rank 1 up blocks until the dial
// is cancelled, like a dial to a host whose network was cut. started is
// closed once a Send waits on it.
func tcpWorld(t *testing.T) (w *world, started <-chan struct{}) {
	t.Helper()
	w = newWorld(0, 2)
	ch := make(chan struct{})
	var once sync.Once
	ep, err := tcp.Listen(t.Context(), tcp.Config{Rank: 0, Token: []byte("token"), Sink: w.eng,
		Resolve: func(ctx context.Context, rank int) (string, error) {
			once.Do(func() { close(ch) })
			<-ctx.Done()
			return "", ctx.Err()
		}})
	if err != nil {
		t.Fatal(err)
	}
	w.addEndpoint(ep)
	w.setRoutes(ep, "tcp", nil)
	t.Cleanup(w.close)
	return w, ch
}

// sendWaiting starts Send(c, …, dst) and returns its result once started
// is closed and the launcher event ev has been handled, failing the test if
// the Send is still blocked 30 s later.
func sendWaiting(t *testing.T, w *world, started <-chan struct{}, ev rendezvous.Event) error {
	t.Helper()
	sent := make(chan error, 1)
	go func() { sent <- Send(w.comm, []int{1}, 1, 0) }() // exits when Send returns; joined through sent (or by close cancelling the dial)
	<-started
	w.event(ev)
	select {
	case err := <-sent:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Send still blocked 30 s after the launcher's event")
		return nil
	}
}

// TestHostLostEndsSendDial: a Send whose first dial waits on a peer that
// does not answer fails as soon as the launcher reports the peer's host
// lost (it ends the job), with an error naming the rank and the host,
// instead of waiting out the 10 s dial deadline.
func TestHostLostEndsSendDial(t *testing.T) {
	w, started := tcpWorld(t)
	err := sendWaiting(t, w, started, rendezvous.Event{Kind: rendezvous.EventAbort, Rank: -1, Code: 1,
		Text: "lost the daemon on host 10.77.0.3 (no word from it for 3s)"})
	t.Logf("Send returned: %v", err)
	if !errors.Is(err, ErrAborted) {
		t.Fatalf("Send = %v; want ErrAborted", err)
	}
	for _, want := range []string{"send 0→1", "rank 1", "lost the daemon on host 10.77.0.3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestRankFailedEndsSendDial: likewise when the launcher reports the rank
// itself failed.
func TestRankFailedEndsSendDial(t *testing.T) {
	w, started := tcpWorld(t)
	err := sendWaiting(t, w, started, rendezvous.Event{Kind: rendezvous.EventRankFailed, Rank: 1, Code: 2,
		Text: "rank 1 (pid 4242 on host h3) exited with status 2"})
	t.Logf("Send returned: %v", err)
	if !errors.Is(err, ErrPeerLost) || !strings.Contains(err.Error(), "rank 1 failed: rank 1 (pid 4242 on host h3)") {
		t.Fatalf("Send = %v; want ErrPeerLost naming rank 1 and its host", err)
	}
}
