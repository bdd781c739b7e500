package mpi

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/inproc"
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
