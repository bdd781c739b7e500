package tcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gorun-hpc/gorun/runtime/auth"
	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/transporttest"
)

var testToken = []byte("job-token-for-tests")

// book is a rendezvous stand-in: rank → address.
type book struct {
	mu    sync.Mutex
	addrs map[int]string
	calls atomic.Int64
}

func newBook() *book { return &book{addrs: make(map[int]string)} }

func (b *book) set(rank int, addr string) {
	b.mu.Lock()
	b.addrs[rank] = addr
	b.mu.Unlock()
}

func (b *book) resolve(_ context.Context, rank int) (string, error) {
	b.calls.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.addrs[rank]
	if !ok {
		return "", fmt.Errorf("no address for rank %d", rank)
	}
	return a, nil
}

func listen(t testing.TB, rank int, token []byte, sink transport.Sink, bk *book) *Endpoint {
	t.Helper()
	e, err := Listen(context.Background(), Config{Rank: rank, Token: token, Sink: sink, Resolve: bk.resolve})
	if err != nil {
		t.Fatalf("Listen rank %d: %v", rank, err)
	}
	bk.set(rank, e.Addr())
	t.Cleanup(func() { e.Close() })
	return e
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, sinks []transport.Sink) []transport.Endpoint {
		bk := newBook()
		eps := make([]transport.Endpoint, len(sinks))
		for i, s := range sinks {
			eps[i] = listen(t, i, testToken, s, bk)
		}
		return eps
	})
}

func data(src, dst int, seq uint64, payload []byte) transport.Header {
	return transport.Header{Kind: transport.KindData, Src: int32(src), Dst: int32(dst), Seq: seq, Len: uint32(len(payload))}
}

// waitFrames waits until rec holds n frames.
func waitFrames(t *testing.T, rec *transporttest.Recorder, n int) []transporttest.Frame {
	t.Helper()
	rec.Wait(t, fmt.Sprintf("%d frames", n), func(fs []transporttest.Frame, _ []transporttest.Lost) bool { return len(fs) >= n })
	return rec.Frames()
}

func waitLost(t *testing.T, rec *transporttest.Recorder) transporttest.Lost {
	t.Helper()
	rec.Wait(t, "a lost peer", func(_ []transporttest.Frame, l []transporttest.Lost) bool { return len(l) > 0 })
	return rec.LostPeers()[0]
}

// TestWrongToken: a dialer with another job's token is refused with
// auth.ErrRejected, and the listener goes on serving the right job.
func TestWrongToken(t *testing.T) {
	bk := newBook()
	rec1 := transporttest.NewRecorder(1)
	listen(t, 1, testToken, rec1, bk)
	intruder := listen(t, 0, []byte("another-job"), transporttest.NewRecorder(0), bk)
	err := intruder.Send(data(0, 1, 0, nil), nil)
	if !errors.Is(err, auth.ErrRejected) || !errors.Is(err, transport.ErrPeerLost) {
		t.Fatalf("Send with the wrong token = %v, want auth.ErrRejected and ErrPeerLost", err)
	}
	if want := "tcp: dial rank 1 at " + bk.addrs[1]; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	friend := listen(t, 2, testToken, transporttest.NewRecorder(2), bk)
	if err := friend.Send(data(2, 1, 0, []byte("hi")), []byte("hi")); err != nil {
		t.Fatalf("Send after a refused connection: %v", err)
	}
	fs := waitFrames(t, rec1, 1)
	if fs[0].Header.Src != 2 || string(fs[0].Payload) != "hi" {
		t.Errorf("got %+v", fs[0])
	}
	if l := rec1.LostPeers(); len(l) != 0 {
		t.Errorf("refused connection reported as lost peer: %v", l)
	}
}

// TestGarbage: bytes that are not the handshake get the connection dropped;
// the next proper connection works.
func TestGarbage(t *testing.T) {
	bk := newBook()
	rec1 := transporttest.NewRecorder(1)
	e1 := listen(t, 1, testToken, rec1, bk)
	for _, junk := range [][]byte{
		bytes.Repeat([]byte{0xff}, 200),
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat("x", 100)),
	} {
		c, err := net.Dial("tcp", e1.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(junk); err != nil {
			t.Fatal(err)
		}
		// The server sends its challenge, reads our junk, and hangs up.
		c.SetReadDeadline(time.Now().Add(time.Minute))
		// Hanging up with our junk unread may reset the connection; a
		// timeout would mean the listener kept it.
		if _, err := io.Copy(io.Discard, c); isTimeout(err) {
			t.Fatalf("connection with junk was not closed by the listener: %v", err)
		}
		c.Close()
	}
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	if err := e0.Send(data(0, 1, 0, []byte("ok")), []byte("ok")); err != nil {
		t.Fatalf("Send after garbage: %v", err)
	}
	waitFrames(t, rec1, 1)
}

// TestSilentConnection: a connection that never speaks does not stall the
// listener and is dropped after the handshake timeout.
func TestSilentConnection(t *testing.T) {
	bk := newBook()
	rec1 := transporttest.NewRecorder(1)
	e1, err := Listen(context.Background(), Config{Rank: 1, Token: testToken, Sink: rec1, Resolve: bk.resolve, HandshakeTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	bk.set(1, e1.Addr())
	var silent []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", e1.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	if err := e0.Send(data(0, 1, 0, nil), nil); err != nil {
		t.Fatalf("Send while silent connections are open: %v", err)
	}
	waitFrames(t, rec1, 1)
	for _, c := range silent {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		n, err := io.Copy(io.Discard, c) // the challenge, then EOF at the server's deadline
		if err != nil || n == 0 {
			t.Errorf("silent connection: read %d bytes, %v; want the challenge then EOF", n, err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawDial connects to addr as rank src and completes the dialer's handshake.
func rawDial(t *testing.T, addr string, src, dst int) *net.TCPConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*net.TCPConn)
	if err := auth.Client(c, testToken, authLabel); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(appendHello(nil, src, dst)); err != nil {
		t.Fatal(err)
	}
	var v [1]byte
	if _, err := io.ReadFull(c, v[:]); err != nil || v[0] != verdictOK {
		t.Fatalf("hello verdict %d, %v", v[0], err)
	}
	return c
}

func writeFrame(t *testing.T, c net.Conn, h transport.Header, payload []byte) {
	t.Helper()
	b, _ := h.AppendBinary(nil)
	if _, err := c.Write(append(b, payload...)); err != nil {
		t.Fatal(err)
	}
}

// TestPeerKilled: a peer whose connection ends without a Bye is reported
// lost, after the frames it sent.
func TestPeerKilled(t *testing.T) {
	bk := newBook()
	rec0 := transporttest.NewRecorder(0)
	e0 := listen(t, 0, testToken, rec0, bk)
	c := rawDial(t, e0.Addr(), 1, 0)
	writeFrame(t, c, data(1, 0, 0, []byte("last words")), []byte("last words"))
	c.Close() // the process "dies": no Bye
	l := waitLost(t, rec0)
	if l.Rank != 1 || !errors.Is(l.Err, transport.ErrPeerLost) || !strings.Contains(l.Err.Error(), "tcp: connection from rank 1") {
		t.Errorf("PeerLost(%d, %v), want rank 1 and ErrPeerLost", l.Rank, l.Err)
	}
	fs := rec0.Frames()
	if len(fs) != 1 || string(fs[0].Payload) != "last words" {
		t.Errorf("frames before the loss: %+v", fs)
	}
}

// TestPeerKilledMidFrame: a connection cut inside a payload is a lost peer,
// and the half-read frame is not delivered.
func TestPeerKilledMidFrame(t *testing.T) {
	bk := newBook()
	rec0 := transporttest.NewRecorder(0)
	e0 := listen(t, 0, testToken, rec0, bk)
	c := rawDial(t, e0.Addr(), 1, 0)
	h := data(1, 0, 0, make([]byte, 1000))
	b, _ := h.AppendBinary(nil)
	c.Write(append(b, make([]byte, 10)...))
	c.Close()
	if l := waitLost(t, rec0); l.Rank != 1 {
		t.Errorf("PeerLost(%d, %v), want rank 1", l.Rank, l.Err)
	}
	if fs := rec0.Frames(); len(fs) != 0 {
		t.Errorf("delivered %d frames, want none", len(fs))
	}
	e0.Close()
	rec0.MarkClosed()
	for _, v := range rec0.Violations() {
		if !strings.Contains(v, "undelivered") { // Buffer without Deliver is expected here
			t.Error(v)
		}
	}
}

// TestBadFrameFromPeer: an authenticated peer that sends a frame claiming
// another source is cut off and reported lost.
func TestBadFrameFromPeer(t *testing.T) {
	bk := newBook()
	rec0 := transporttest.NewRecorder(0)
	e0 := listen(t, 0, testToken, rec0, bk)
	c := rawDial(t, e0.Addr(), 1, 0)
	defer c.Close()
	writeFrame(t, c, data(5, 0, 0, nil), nil)
	l := waitLost(t, rec0)
	if l.Rank != 1 || !errors.Is(l.Err, transport.ErrBadHeader) {
		t.Errorf("PeerLost(%d, %v), want rank 1 and ErrBadHeader", l.Rank, l.Err)
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("connection not closed after a bad frame: %v", err)
	}
}

// fakePeer accepts one connection as rank, completes the acceptor's
// handshake, reads one frame and hangs up without a Bye.
func fakePeer(t *testing.T, rank int) (addr string, got <-chan transport.Header) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan transport.Header, 1)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() { // exits after one connection or when the listener closes; joined by cleanup
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if auth.Server(c, testToken, authLabel) != nil {
			return
		}
		var b [helloSize]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		if _, dst, err := parseHello(b[:]); err != nil || dst != rank {
			return
		}
		c.Write([]byte{verdictOK})
		var hb [transport.HeaderSize]byte
		if _, err := io.ReadFull(c, hb[:]); err != nil {
			return
		}
		h, _ := transport.ParseHeader(hb[:])
		ch <- h
	}()
	return ln.Addr().String(), ch
}

// TestDialedPeerDies: the death of a peer we only send to is noticed by the
// reader of the dialed connection; later Sends fail with ErrPeerLost.
func TestDialedPeerDies(t *testing.T) {
	bk := newBook()
	addr, got := fakePeer(t, 1)
	bk.set(1, addr)
	rec0 := transporttest.NewRecorder(0)
	e0 := listen(t, 0, testToken, rec0, bk)
	if err := e0.Send(data(0, 1, 7, nil), nil); err != nil {
		t.Fatal(err)
	}
	if h := <-got; h.Seq != 7 {
		t.Errorf("fake peer got %+v", h)
	}
	l := waitLost(t, rec0)
	if l.Rank != 1 || !errors.Is(l.Err, transport.ErrPeerLost) || !strings.Contains(l.Err.Error(), "tcp: connection to rank 1 at "+addr) {
		t.Errorf("PeerLost(%d, %v)", l.Rank, l.Err)
	}
	err := e0.Send(data(0, 1, 8, nil), nil)
	if !errors.Is(err, transport.ErrPeerLost) {
		t.Errorf("Send to a dead peer = %v, want ErrPeerLost", err)
	}
}

// TestNoDelay: TCP_NODELAY is set on both ends of an established
// connection, on the descriptors that carry its frames once detached from
// the network poller.
func TestNoDelay(t *testing.T) {
	bk := newBook()
	rec1 := transporttest.NewRecorder(1)
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	e1 := listen(t, 1, testToken, rec1, bk)
	if err := e0.Send(data(0, 1, 0, []byte("hi")), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, rec1, 1) // the acceptor registers its connection before it reads
	fds := map[string]int{}
	v, ok := e0.out.Load(1)
	if !ok || v.(*conn).s == nil {
		t.Fatal("rank 0 holds no connection to rank 1")
	}
	fds["dialer"] = v.(*conn).s.fd
	e1.mu.Lock()
	for c := range e1.conns {
		fds["acceptor"] = c.s.fd
	}
	e1.mu.Unlock()
	if len(fds) != 2 {
		t.Fatalf("descriptors %v; want the dialer's and the acceptor's", fds)
	}
	for side, fd := range fds {
		on, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
		if err != nil {
			t.Fatalf("%s: getsockopt TCP_NODELAY: %v", side, err)
		}
		if on == 0 {
			t.Errorf("%s: TCP_NODELAY is off", side)
		}
	}
}

// TestWrongRank: an address that leads to another rank is a dial error.
func TestWrongRank(t *testing.T) {
	bk := newBook()
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	e2 := listen(t, 2, testToken, transporttest.NewRecorder(2), bk)
	bk.set(1, e2.Addr()) // stale entry
	err := e0.Send(data(0, 1, 0, nil), nil)
	if err == nil || !strings.Contains(err.Error(), "not rank 1") || !errors.Is(err, transport.ErrPeerLost) {
		t.Fatalf("Send through a stale address = %v", err)
	}
}

// TestDialFailure: a dead address gives an error naming rank and address,
// and is not dialed again.
func TestDialFailure(t *testing.T) {
	bk := newBook()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	bk.set(3, dead)
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	err = e0.Send(data(0, 3, 0, nil), nil)
	want := "tcp: dial rank 3 at " + dead + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, transport.ErrPeerLost) {
		t.Fatalf("Send to a dead address = %v, want prefix %q and ErrPeerLost", err, want)
	}
	calls := bk.calls.Load()
	err2 := e0.Send(data(0, 3, 1, nil), nil)
	if err2 == nil || err2.Error() != err.Error() || bk.calls.Load() != calls {
		t.Errorf("second Send = %v after %d resolves; want the cached error, no new resolve", err2, bk.calls.Load()-calls)
	}
}

// TestResolveError: a failed Resolve is reported and retried on the next Send.
func TestResolveError(t *testing.T) {
	bk := newBook()
	rec1 := transporttest.NewRecorder(1)
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	err := e0.Send(data(0, 1, 0, nil), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "tcp: resolve rank 1: ") {
		t.Fatalf("Send to an unknown rank = %v", err)
	}
	listen(t, 1, testToken, rec1, bk)
	if err := e0.Send(data(0, 1, 1, nil), nil); err != nil {
		t.Fatalf("Send once the rank is known: %v", err)
	}
	waitFrames(t, rec1, 1)
}

// TestConcurrentFirstSends: many first Sends to one rank share one dial.
func TestConcurrentFirstSends(t *testing.T) {
	bk := newBook()
	rec1 := transporttest.NewRecorder(1)
	listen(t, 1, testToken, rec1, bk)
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	const senders = 16
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() { // exits after one Send; joined by wg
			defer wg.Done()
			if err := e0.Send(data(0, 1, uint64(i), nil), nil); err != nil {
				t.Errorf("Send: %v", err)
			}
		}()
	}
	wg.Wait()
	waitFrames(t, rec1, senders)
	if n := bk.calls.Load(); n != 1 {
		t.Errorf("Resolve called %d times, want 1", n)
	}
	e0.mu.Lock()
	n := len(e0.conns)
	e0.mu.Unlock()
	if n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestCloseAbortsResolve: Close cancels a Resolve that blocks, and the Send
// waiting on it returns ErrClosed.
func TestCloseAbortsResolve(t *testing.T) {
	e0, started := listenBlockedResolve(t)
	sent := make(chan error, 1)
	go func() { sent <- e0.Send(data(0, 1, 0, nil), nil) }() // exits when Send returns; joined through sent
	<-started
	e0.Close()
	if err := <-sent; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send blocked in Resolve during Close = %v, want ErrClosed", err)
	}
}

func TestListenErrors(t *testing.T) {
	bk := newBook()
	sink := transporttest.NewRecorder(0)
	for name, cfg := range map[string]Config{
		"no token":     {Rank: 0, Sink: sink, Resolve: bk.resolve},
		"no sink":      {Rank: 0, Token: testToken, Resolve: bk.resolve},
		"no resolve":   {Rank: 0, Token: testToken, Sink: sink},
		"bad rank":     {Rank: -1, Token: testToken, Sink: sink, Resolve: bk.resolve},
		"bad address":  {Rank: 0, Token: testToken, Sink: sink, Resolve: bk.resolve, Listen: "256.0.0.1:x"},
		"neg. timeout": {Rank: 0, Token: testToken, Sink: sink, Resolve: bk.resolve, HandshakeTimeout: -1},
	} {
		if e, err := Listen(context.Background(), cfg); err == nil || !strings.HasPrefix(err.Error(), "tcp: ") {
			t.Errorf("%s: Listen = %v; want a tcp: error", name, err)
			if e != nil {
				e.Close()
			}
		}
	}
}

func TestBadFrames(t *testing.T) {
	bk := newBook()
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	for _, h := range []transport.Header{
		{Kind: transport.KindData, Src: 1, Dst: 0},         // wrong source
		{Kind: transport.KindData, Src: 0, Dst: -1},        // bad destination
		{Kind: transport.KindBye, Src: 0, Dst: 1},          // reserved to Close
		{Kind: transport.KindData, Src: 0, Dst: 1, Len: 3}, // payload missing
	} {
		if err := e0.Send(h, nil); err == nil {
			t.Errorf("Send(%+v) succeeded", h)
		}
	}
	if n := bk.calls.Load(); n != 0 {
		t.Errorf("invalid frames caused %d resolves", n)
	}
}

func FuzzHello(f *testing.F) {
	f.Add(appendHello(nil, 0, 1))
	f.Add(appendHello(nil, 1<<31-1, 0))
	f.Add([]byte("GRNHELO1\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Add([]byte("GRNAUTH1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		src, dst, err := parseHello(b)
		if err != nil {
			if !errors.Is(err, errBadHello) {
				t.Fatalf("error %v does not wrap errBadHello", err)
			}
			return
		}
		if src < 0 || dst < 0 {
			t.Fatalf("negative rank from %x: %d, %d", b, src, dst)
		}
		if got := appendHello(nil, src, dst); !bytes.Equal(got, b[:helloSize]) {
			t.Fatalf("round trip: %x → (%d, %d) → %x", b[:helloSize], src, dst, got)
		}
	})
}

// FuzzAcceptHandshake feeds arbitrary bytes to the acceptor: whatever comes,
// the handshake fails or succeeds without panicking or hanging.
func FuzzAcceptHandshake(f *testing.F) {
	f.Add([]byte("GRNAUTH1"))
	f.Add(bytes.Repeat([]byte{0}, 200))
	f.Add([]byte{})
	e := &Endpoint{rank: 0, token: testToken, handshake: 20 * time.Millisecond}
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		b.SetDeadline(time.Now().Add(2 * time.Second))
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // drains the acceptor's writes; exits when a is closed below; joined by wg
			defer wg.Done()
			io.Copy(io.Discard, b)
		}()
		go func() { // exits once in is written or a is closed; joined by wg
			defer wg.Done()
			b.Write(in)
		}()
		_, err := e.acceptHandshake(a)
		a.Close()
		wg.Wait()
		b.Close()
		if err == nil {
			t.Fatalf("handshake accepted random input %x", in)
		}
	})
}

func BenchmarkSend(b *testing.B) {
	for _, size := range []int{8, 64 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			bk := newBook()
			sink := &countSink{buf: make([]byte, size), arrived: make(chan struct{}, 1)}
			listen(b, 1, testToken, sink, bk)
			e0 := listen(b, 0, testToken, transporttest.NewRecorder(0), bk)
			payload := make([]byte, size)
			h := data(0, 1, 0, payload)
			if err := e0.Send(h, payload); err != nil { // dial outside the timing
				b.Fatal(err)
			}
			sink.await(1)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e0.Send(h, payload); err != nil {
					b.Fatal(err)
				}
			}
			sink.await(int64(b.N) + 1)
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// countSink receives into one reused buffer and counts frames.
type countSink struct {
	buf     []byte
	n       atomic.Int64
	want    atomic.Int64
	arrived chan struct{}
}

func (s *countSink) Buffer(h transport.Header) []byte { return s.buf[:h.Len] }
func (s *countSink) Deliver(transport.Header, []byte) {
	if s.n.Add(1) >= s.want.Load() {
		select {
		case s.arrived <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}
func (s *countSink) PeerLost(int, error) {}

// await returns once n frames have arrived.
func (s *countSink) await(n int64) {
	s.want.Store(n)
	for s.n.Load() < n {
		<-s.arrived
	}
}

// stalledPeer accepts one connection as rank, completes the handshake and
// then never reads, so the sender's writes back up.
func stalledPeer(t *testing.T, rank int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(release); ln.Close(); <-done })
	go func() { // exits at cleanup; joined by it
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if auth.Server(c, testToken, authLabel) != nil {
			return
		}
		var b [helloSize]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		c.Write([]byte{verdictOK})
		<-release
	}()
	return ln.Addr().String()
}

// TestCloseWithStalledPeer: a Send blocked on a peer that stopped reading
// does not keep Close from returning, and returns ErrClosed itself.
func TestCloseWithStalledPeer(t *testing.T) {
	old := closeTimeout
	closeTimeout = 200 * time.Millisecond
	defer func() { closeTimeout = old }()
	bk := newBook()
	bk.set(1, stalledPeer(t, 1))
	e0 := listen(t, 0, testToken, transporttest.NewRecorder(0), bk)
	blocked := blockSends(t, e0)
	start := time.Now()
	e0.Close()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := <-blocked; !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Send blocked during Close = %v, want ErrClosed", err)
	}
}

// TestShutdownAfterClose checks that a sock closed by one goroutine is never
// shut down afterwards by another (a Send failing as the watcher closes):
// the descriptor number is free for reuse by then, and shutting it down
// would cut an unrelated connection.
func TestShutdownAfterClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (*net.TCPConn, net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.TCPConn), a
	}
	c1, a1 := pair()
	defer a1.Close()
	s1, err := detach(c1)
	if err != nil {
		t.Fatal(err)
	}
	c2, a2 := pair()
	defer a2.Close()
	s2, err := detach(c2)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.close()
	old := s1.fd
	s1.close()
	// Another connection takes over the freed descriptor number (nothing
	// was opened in between, so the number is free).
	if err := unix.Dup2(s2.fd, old); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(old)
	s1.shutdown(unix.SHUT_RDWR) // must not touch the socket now at that number
	if _, err := unix.Write(old, []byte("ping")); err != nil {
		t.Fatalf("write on the connection that reused descriptor %d: %v", old, err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(a2, b); err != nil || string(b) != "ping" {
		t.Fatalf("read %q, %v; want ping", b, err)
	}
}

// blockSends sends 1 MiB messages from e0 to rank 1, which never reads,
// from a goroutine until a Send fails, and returns once a Send is stuck on
// the full socket buffers (it then holds the connection's write lock for
// good); the failing Send's error arrives on the returned channel. Nothing
// signals "blocked in the kernel", so this polls, bounded; it orders
// nothing, it only makes sure the case under test is the one that happens.
func blockSends(t *testing.T, e0 *Endpoint) <-chan error {
	t.Helper()
	payload := make([]byte, 1<<20)
	if err := e0.Send(data(0, 1, 0, payload), payload); err != nil {
		t.Fatal(err)
	}
	c, _ := e0.conn(1)
	blocked := make(chan error, 1)
	go func() { // exits when a Send fails (FailPeer, or Close giving up on the peer); joined through blocked
		for {
			if err := e0.Send(data(0, 1, 1, payload), payload); err != nil {
				blocked <- err
				return
			}
		}
	}()
	for deadline := time.Now().Add(time.Minute); c.wmu.TryLock(); {
		c.wmu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("Send to a peer that does not read never blocked")
		}
		time.Sleep(time.Millisecond)
	}
	return blocked
}

// listenBlockedResolve returns rank 0's endpoint, whose Resolve blocks
// until its context ends, and a channel closed once Resolve was called.
// The caller closes the endpoint.
func listenBlockedResolve(t *testing.T) (*Endpoint, <-chan struct{}) {
	t.Helper()
	started := make(chan struct{})
	e0, err := Listen(context.Background(), Config{Rank: 0, Token: testToken, Sink: transporttest.NewRecorder(0),
		Resolve: func(ctx context.Context, rank int) (string, error) {
			close(started)
			<-ctx.Done()
			return "", ctx.Err()
		}})
	if err != nil {
		t.Fatal(err)
	}
	return e0, started
}
