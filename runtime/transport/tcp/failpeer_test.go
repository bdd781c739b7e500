package tcp

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/transporttest"
)

// errHostLost stands in for the launcher's notice that a host is lost.
var errHostLost = errors.New("lost the daemon on host h3 (no word from it for 3s)")

// promptly bounds how long a Send may take to fail after FailPeer. The
// deadline it must beat is DefaultHandshakeTimeout (10 s); the margin is
// for a loaded machine. The tests check the error's cause first: a Send
// that ran into its own deadline fails with a timeout, not errHostLost.
const promptly = 5 * time.Second

// sendAsync starts a Send of an empty frame from e to rank and returns
// where its result arrives.
func sendAsync(e *Endpoint, rank int, seq uint64) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- e.Send(data(e.rank, rank, seq, nil), nil) }() // exits when Send returns; joined through ch
	return ch
}

// await returns the result of a Send started by sendAsync, failing the
// test if it has not come 30 s after FailPeer (it would hang for good
// where nothing but FailPeer can end it).
func await(t *testing.T, sent <-chan error) error {
	t.Helper()
	select {
	case err := <-sent:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Send still blocked 30 s after FailPeer")
		return nil
	}
}

// checkFailed checks that err is FailPeer's: ErrPeerLost, the cause, and a
// message that names the rank.
func checkFailed(t *testing.T, err error, rank string) {
	t.Helper()
	if !errors.Is(err, errHostLost) || !errors.Is(err, transport.ErrPeerLost) {
		t.Fatalf("Send = %v; want ErrPeerLost and the FailPeer cause %q", err, errHostLost)
	}
	if !strings.Contains(err.Error(), "rank "+rank) || !strings.Contains(err.Error(), "lost the daemon on host h3") {
		t.Errorf("error %q does not name rank %s and the host", err, rank)
	}
}

// silentPeer accepts connections and never says a word, like a process
// whose host stopped answering after the connection was made: a dialer's
// handshake waits for its challenge until the handshake deadline. Each
// accepted connection is announced on the channel.
func silentPeer(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 16)
	done := make(chan struct{})
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	go func() { // exits when the listener closes; joined by cleanup
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			accepted <- struct{}{}
		}
	}()
	return ln.Addr().String(), accepted
}

// TestFailPeerEndsHandshake: a first Send whose dial waits on a peer that
// never answers fails as soon as FailPeer names that peer, with FailPeer's
// cause, rather than at the 10 s handshake deadline; later Sends fail at
// once with the same error, and the Sink hears nothing of it.
func TestFailPeerEndsHandshake(t *testing.T) {
	bk := newBook()
	addr, accepted := silentPeer(t)
	bk.set(1, addr)
	rec0 := transporttest.NewRecorder(0)
	e0 := listen(t, 0, testToken, rec0, bk)
	if e0.handshake != DefaultHandshakeTimeout {
		t.Fatalf("handshake timeout %v, want the default", e0.handshake)
	}
	sent := sendAsync(e0, 1, 0)
	<-accepted // the dial is through; the handshake waits for the peer
	start := time.Now()
	e0.FailPeer(1, errHostLost)
	err := await(t, sent)
	checkFailed(t, err, "1")
	if want := "tcp: dial rank 1 at " + addr + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	if d := time.Since(start); d > promptly {
		t.Errorf("Send failed %v after FailPeer; want well within the %v deadline", d, DefaultHandshakeTimeout)
	}
	calls := bk.calls.Load()
	if err2 := e0.Send(data(0, 1, 1, nil), nil); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("later Send = %v; want %v", err2, err)
	}
	if bk.calls.Load() != calls {
		t.Errorf("a later Send resolved rank 1 again")
	}
	// The caller of FailPeer knows already: a loss the endpoint notices
	// later is not reported (lost calls the Sink synchronously).
	e0.lost(1, errNoBye)
	if l := rec0.LostPeers(); len(l) != 0 {
		t.Errorf("a peer failed by FailPeer was reported lost: %v", l)
	}
}

// TestFailPeerEndsResolve: a Send still waiting for the peer's address
// (Resolve blocks on the rendezvous) fails with FailPeer's cause.
func TestFailPeerEndsResolve(t *testing.T) {
	e0, started := listenBlockedResolve(t)
	defer e0.Close()
	sent := sendAsync(e0, 1, 0)
	<-started
	e0.FailPeer(-1, errHostLost) // every rank: the job is ending
	err := await(t, sent)
	checkFailed(t, err, "1")
	if want := "tcp: send to rank 1: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

// TestFailPeerBeforeDial: after FailPeer, a first Send to that rank fails at
// once without looking the rank up; other ranks are still reached.
func TestFailPeerBeforeDial(t *testing.T) {
	bk := newBook()
	rec2 := transporttest.NewRecorder(2)
	listen(t, 2, testToken, rec2, bk)
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	bk.set(1, "192.0.2.1:9") // TEST-NET-1: never dialed
	e0.FailPeer(1, errHostLost)
	checkFailed(t, e0.Send(data(0, 1, 0, nil), nil), "1")
	if n := bk.calls.Load(); n != 0 {
		t.Errorf("Resolve called %d times for a failed rank", n)
	}
	if err := e0.Send(data(0, 2, 0, nil), nil); err != nil {
		t.Fatalf("Send to a healthy rank after FailPeer of another: %v", err)
	}
	waitFrames(t, rec2, 1)
}

// TestFailPeerEndsBlockedWrite: a Send blocked on a peer that stopped
// reading (its host went silent with our data in flight) fails with
// FailPeer's cause.
func TestFailPeerEndsBlockedWrite(t *testing.T) {
	bk := newBook()
	bk.set(1, stalledPeer(t, 1))
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	blocked := blockSends(t, e0)
	start := time.Now()
	e0.FailPeer(1, errHostLost)
	checkFailed(t, await(t, blocked), "1")
	if d := time.Since(start); d > promptly {
		t.Errorf("blocked Send failed %v after FailPeer", d)
	}
}
