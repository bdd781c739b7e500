package rendezvous

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/auth"
)

var testToken = []byte("test-job-token-0123456789abcdef")

// testCtx returns a context that ends well before the test's own deadline,
// so that a hang fails the test with a message instead of killing the binary.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startServer(t *testing.T, size int, tweak ...func(*ServerConfig)) *Server {
	t.Helper()
	cfg := ServerConfig{Size: size, Token: testToken}
	for _, f := range tweak {
		f(&cfg)
	}
	s, err := Listen(testCtx(t), "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func dial(t *testing.T, s *Server, rank int, onEvent func(Event)) *Client {
	t.Helper()
	c, err := Dial(testCtx(t), ClientConfig{Addr: s.Addr(), Token: testToken, Rank: rank, OnEvent: onEvent})
	if err != nil {
		t.Fatalf("dial rank %d: %v", rank, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dialAll(t *testing.T, s *Server, n int) []*Client {
	cs := make([]*Client, n)
	for r := range cs {
		cs[r] = dial(t, s, r, nil)
	}
	return cs
}

// onRanks runs f for every rank concurrently and fails the test on errors.
func onRanks(t *testing.T, n int, f func(rank int) error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() { errs[r] = f(r) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func TestSetFenceGet(t *testing.T) {
	const n = 8
	s := startServer(t, n)
	cs := dialAll(t, s, n)
	ctx := testCtx(t)
	if cs[3].Rank() != 3 || cs[3].Size() != n {
		t.Fatalf("Rank, Size = %d, %d", cs[3].Rank(), cs[3].Size())
	}
	for round := range 5 {
		onRanks(t, n, func(r int) error {
			c := cs[r]
			if err := c.Set(ctx, fmt.Sprintf("addr/%d", r), fmt.Appendf(nil, "host:%d/%d", r, round)); err != nil {
				return err
			}
			if err := c.Fence(ctx); err != nil {
				return err
			}
			for p := range n {
				v, err := c.Get(ctx, fmt.Sprintf("addr/%d", p))
				if err != nil {
					return err
				}
				if want := fmt.Sprintf("host:%d/%d", p, round); string(v) != want {
					return fmt.Errorf("round %d rank %d: Get(addr/%d) = %q, want %q", round, r, p, v, want)
				}
			}
			// Second fence: nobody overwrites addr/* for the next round
			// before everyone has read this round's values.
			return c.Fence(ctx)
		})
	}
}

func TestEmptyValueAndOverwrite(t *testing.T) {
	s := startServer(t, 1)
	c := dial(t, s, 0, nil)
	ctx := testCtx(t)
	if err := c.Set(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	v, err := c.Get(ctx, "k")
	if err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get = %q (nil %v), %v; want empty non-nil", v, v == nil, err)
	}
	if err := c.Set(ctx, "k", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "two" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := c.Fence(ctx); err != nil { // size 1: immediate
		t.Fatal(err)
	}
}

func TestInvalidArguments(t *testing.T) {
	s := startServer(t, 1)
	c := dial(t, s, 0, nil)
	ctx := testCtx(t)
	for _, tc := range []struct {
		key string
		val []byte
	}{
		{"", nil},
		{string(make([]byte, MaxKeyLen+1)), nil},
		{"k", make([]byte, MaxValueLen+1)},
	} {
		if err := c.Set(ctx, tc.key, tc.val); !errors.Is(err, ErrInvalid) {
			t.Errorf("Set(key %d bytes, value %d bytes) = %v, want ErrInvalid", len(tc.key), len(tc.val), err)
		}
	}
	if _, err := c.Get(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Get(\"\") = %v, want ErrInvalid", err)
	}
	// Limits are inclusive.
	if err := c.Set(ctx, string(bytes.Repeat([]byte("k"), MaxKeyLen)), make([]byte, MaxValueLen)); err != nil {
		t.Fatal(err)
	}
}

func TestGetBlocksUntilSet(t *testing.T) {
	parked := make(chan string, 1)
	s := startServer(t, 2, func(c *ServerConfig) { c.parked = func(k string) { parked <- k } })
	cs := dialAll(t, s, 2)
	ctx := testCtx(t)
	type res struct {
		v   []byte
		err error
	}
	got := make(chan res, 1)
	go func() { // exits when Get returns
		v, err := cs[0].Get(ctx, "late")
		got <- res{v, err}
	}()
	if k := <-parked; k != "late" {
		t.Fatalf("parked on %q", k)
	}
	select {
	case r := <-got:
		t.Fatalf("Get returned before Set: %q, %v", r.v, r.err)
	default:
	}
	if err := cs[1].Set(ctx, "late", []byte("now")); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || string(r.v) != "now" {
		t.Fatalf("Get = %q, %v", r.v, r.err)
	}
}

func TestGetCancel(t *testing.T) {
	parked := make(chan string, 1)
	s := startServer(t, 1, func(c *ServerConfig) { c.parked = func(k string) { parked <- k } })
	c := dial(t, s, 0, nil)
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() { // exits when Get returns
		_, err := c.Get(ctx, "never")
		errc <- err
	}()
	<-parked
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get = %v, want context.Canceled", err)
	}
	// The cancel frame was sent before Get returned, and the server handles
	// a connection's frames in order: after this Set, it has forgotten the Get.
	if err := c.Set(testCtx(t), "other", nil); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	n := len(s.getWait)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("server still has %d keys with waiters", n)
	}
	// The connection still works.
	if err := c.Set(testCtx(t), "never", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentRequestsOneClient(t *testing.T) {
	const keys = 64
	parked := make(chan string, keys)
	s := startServer(t, 2, func(c *ServerConfig) { c.parked = func(k string) { parked <- k } })
	cs := dialAll(t, s, 2)
	ctx := testCtx(t)

	// Rank 0 fences first: its Fence blocks until rank 1 fences, but must
	// not block rank 0's other requests.
	fenced := make(chan error, 1)
	go func() { fenced <- cs[0].Fence(ctx) }() // exits when Fence returns

	var wg sync.WaitGroup
	errs := make(chan error, 2*keys)
	for i := range keys {
		wg.Go(func() {
			v, err := cs[0].Get(ctx, fmt.Sprintf("k%d", i))
			if err == nil && string(v) != fmt.Sprint(i) {
				err = fmt.Errorf("Get(k%d) = %q", i, v)
			}
			errs <- err
		})
		wg.Go(func() { errs <- cs[0].Set(ctx, fmt.Sprintf("own%d", i), []byte("x")) })
	}
	for range keys {
		<-parked // every Get waits on the server
	}
	for i := keys - 1; i >= 0; i-- {
		if err := cs[1].Set(ctx, fmt.Sprintf("k%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	select {
	case err := <-fenced:
		t.Fatalf("Fence of rank 0 returned before rank 1 fenced: %v", err)
	default:
	}
	if err := cs[1].Fence(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-fenced; err != nil {
		t.Fatal(err)
	}
}

// events collects the events given to OnEvent.
type events struct {
	mu  sync.Mutex
	evs []Event
	ch  chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 1024)} }

func (e *events) on(ev Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
	e.ch <- ev
}

func TestNotifyInOrder(t *testing.T) {
	const n, count = 4, 200
	s := startServer(t, n)
	evs := make([]*events, n)
	for r := range n {
		evs[r] = newEvents()
		dial(t, s, r, evs[r].on)
	}
	for i := range count {
		s.Notify(Event{Kind: EventRankFailed, Rank: i % n, Code: i, Text: fmt.Sprint("failure ", i)})
	}
	for r := range n {
		for i := range count {
			ev := <-evs[r].ch
			want := Event{Kind: EventRankFailed, Rank: i % n, Code: i, Text: fmt.Sprint("failure ", i)}
			if ev != want {
				t.Fatalf("rank %d event %d = %+v, want %+v", r, i, ev, want)
			}
		}
	}
}

func TestNotifyReplayedToLateRanks(t *testing.T) {
	s := startServer(t, 2)
	dial(t, s, 0, nil)
	long := string(bytes.Repeat([]byte("é"), MaxTextLen)) // truncated on a rune boundary
	s.Notify(Event{Kind: EventAbort, Rank: 0, Code: 3, Text: long})
	ev := newEvents()
	dial(t, s, 1, ev.on)
	got := <-ev.ch
	if got.Kind != EventAbort || got.Rank != 0 || got.Code != 3 || len(got.Text) > MaxTextLen ||
		got.Text != long[:len(got.Text)] || len(got.Text) < MaxTextLen-1 {
		t.Fatalf("replayed event = %v %d %d (text %d bytes)", got.Kind, got.Rank, got.Code, len(got.Text))
	}
}

func TestEventLostWhenServerCloses(t *testing.T) {
	parked := make(chan string, 1)
	s := startServer(t, 2, func(c *ServerConfig) { c.parked = func(k string) { parked <- k } })
	ev := newEvents()
	c := dial(t, s, 0, ev.on)
	ctx := testCtx(t)
	errc := make(chan error, 1)
	go func() { // exits when Get returns
		_, err := c.Get(ctx, "never")
		errc <- err
	}()
	<-parked
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := <-ev.ch
	if got.Kind != EventLost || got.Rank != -1 || got.Text == "" {
		t.Fatalf("event = %+v, want EventLost", got)
	}
	if err := <-errc; !errors.Is(err, ErrLost) {
		t.Fatalf("pending Get = %v, want ErrLost", err)
	}
	if err := c.Set(ctx, "k", nil); !errors.Is(err, ErrLost) {
		t.Fatalf("Set after loss = %v, want ErrLost", err)
	}
	_ = c.Close()
	_ = s.Close() // idempotent
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.evs) != 1 {
		t.Fatalf("got %d events, want exactly one EventLost", len(ev.evs))
	}
}

func TestNoEventAfterClientClose(t *testing.T) {
	s := startServer(t, 1)
	ev := newEvents()
	c := dial(t, s, 0, ev.on)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	// Close has joined the reader: no event can come any more.
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.evs) != 0 {
		t.Fatalf("events after Close: %+v", ev.evs)
	}
	if err := c.Fence(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Fence after Close = %v, want ErrClosed", err)
	}
}

func TestAbortAndFinalize(t *testing.T) {
	type abort struct {
		rank, code int
		msg        string
	}
	aborts := make(chan abort, 1)
	finals := make(chan int, 2)
	var s *Server
	s = startServer(t, 2, func(c *ServerConfig) {
		c.OnAbort = func(rank, code int, msg string) {
			aborts <- abort{rank, code, msg}
			s.Notify(Event{Kind: EventAbort, Rank: rank, Code: code, Text: msg})
		}
		c.OnFinalize = func(rank int) { finals <- rank }
	})
	ev := newEvents()
	cs := []*Client{dial(t, s, 0, ev.on), dial(t, s, 1, nil)}
	ctx := testCtx(t)
	if err := cs[1].Abort(ctx, 7, "out of cheese"); err != nil {
		t.Fatal(err)
	}
	if got := <-aborts; got != (abort{1, 7, "out of cheese"}) {
		t.Fatalf("OnAbort(%+v)", got)
	}
	if got := <-ev.ch; got != (Event{Kind: EventAbort, Rank: 1, Code: 7, Text: "out of cheese"}) {
		t.Fatalf("event %+v", got)
	}
	if err := cs[0].Finalize(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-finals; r != 0 {
		t.Fatalf("OnFinalize(%d)", r)
	}
}

func TestWrongTokenRejected(t *testing.T) {
	s := startServer(t, 1)
	_, err := Dial(testCtx(t), ClientConfig{Addr: s.Addr(), Token: []byte("not the token"), Rank: 0})
	if !errors.Is(err, auth.ErrRejected) || !errors.Is(err, ErrRejected) {
		t.Fatalf("Dial with wrong token = %v, want auth.ErrRejected and ErrRejected", err)
	}
	t.Logf("error: %v", err)
	c := dial(t, s, 0, nil) // the server goes on
	if err := c.Fence(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestBadAndDuplicateRank(t *testing.T) {
	gone := make(chan int, 1)
	s := startServer(t, 2, func(c *ServerConfig) { c.OnDisconnect = func(rank int, err error) { gone <- rank } })
	for _, r := range []int{-1, 2, 1 << 20} {
		_, err := Dial(testCtx(t), ClientConfig{Addr: s.Addr(), Token: testToken, Rank: r})
		if !errors.Is(err, ErrBadRank) || !errors.Is(err, ErrRejected) {
			t.Fatalf("Dial rank %d = %v, want ErrBadRank", r, err)
		}
	}
	c := dial(t, s, 1, nil)
	_, err := Dial(testCtx(t), ClientConfig{Addr: s.Addr(), Token: testToken, Rank: 1})
	if !errors.Is(err, ErrRankTaken) || !errors.Is(err, ErrRejected) {
		t.Fatalf("second Dial of rank 1 = %v, want ErrRankTaken", err)
	}
	t.Logf("error: %v", err)
	// Once the server has seen rank 1 leave, it may connect again.
	_ = c.Close()
	if r := <-gone; r != 1 {
		t.Fatalf("OnDisconnect(%d)", r)
	}
	dial(t, s, 1, nil)
}

// readUntilClosed reads from nc until the peer closes it; a timeout (the
// server did not close) fails the test.
func readUntilClosed(t *testing.T, nc net.Conn, what string) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: server did not close the connection", what)
	}
}

func rawConn(t *testing.T, s *Server) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return nc
}

// authed returns a raw connection that has passed the auth exchange.
func authed(t *testing.T, s *Server) net.Conn {
	t.Helper()
	nc := rawConn(t, s)
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := auth.Client(nc, testToken, AuthLabel); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Time{})
	return nc
}

func TestHostilePeersDoNotStopServer(t *testing.T) {
	gone := make(chan error, 1)
	s := startServer(t, 2, func(c *ServerConfig) {
		c.helloTimeout = 300 * time.Millisecond
		c.OnDisconnect = func(rank int, err error) {
			select { // only the first matters; the clients' own closes at cleanup follow
			case gone <- err:
			default:
			}
		}
	})
	silent := rawConn(t, s) // never says anything
	garbage := rawConn(t, s)
	if _, err := garbage.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 10)); err != nil {
		t.Fatal(err)
	}
	authSilent := authed(t, s) // proves the token, then sends no hello
	huge := authed(t, s)       // announces a frame over the cap
	if _, err := huge.Write([]byte{0xff, 0xff, 0xff, 0x7f}); err != nil {
		t.Fatal(err)
	}
	junk := authed(t, s) // a well-sized frame that is not msgpack
	if _, err := junk.Write([]byte{4, 0, 0, 0, 0xc1, 0xc1, 0xc1, 0xc1}); err != nil {
		t.Fatal(err)
	}

	// While all of those are open, a proper client is served.
	c := dial(t, s, 0, nil)
	ctx := testCtx(t)
	if err := c.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	readUntilClosed(t, garbage, "garbage")
	readUntilClosed(t, huge, "oversized frame")
	readUntilClosed(t, junk, "junk frame")
	readUntilClosed(t, authSilent, "silent after auth")
	readUntilClosed(t, silent, "silent")

	// An accepted rank that then sends garbage is dropped, and its rank freed.
	bad := authed(t, s)
	hello, _ := encodeFrame(&msg{Op: opHello, Rank: 1})
	if _, err := bad.Write(hello); err != nil {
		t.Fatal(err)
	}
	if m, err := readFrame(bad); err != nil || m.Op != opWelcome {
		t.Fatalf("welcome: %+v, %v", m, err)
	}
	if _, err := bad.Write([]byte{3, 0, 0, 0, 0x93, 1, 2}); err != nil { // array of 3 and short
		t.Fatal(err)
	}
	readUntilClosed(t, bad, "garbage after hello")
	if err := <-gone; err == nil {
		t.Fatal("OnDisconnect: nil error for a protocol violation")
	}
	c1 := dial(t, s, 1, nil)
	onRanks(t, 2, func(r int) error { return []*Client{c, c1}[r].Fence(ctx) })
}

func TestCloseJoinsGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		parked := make(chan string, 4)
		s, err := Listen(testCtx(t), "127.0.0.1:0", ServerConfig{Size: 4, Token: testToken,
			parked: func(k string) { parked <- k }})
		if err != nil {
			t.Fatal(err)
		}
		cs := make([]*Client, 4)
		for r := range cs {
			if cs[r], err = Dial(testCtx(t), ClientConfig{Addr: s.Addr(), Token: testToken, Rank: r,
				OnEvent: func(Event) {}}); err != nil {
				t.Fatal(err)
			}
		}
		_ = rawConn(t, s) // a connection stuck in the handshake
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Go(func() { _, _ = c.Get(context.Background(), "never") })
		}
		for range cs {
			<-parked
		}
		s.Notify(Event{Kind: EventAbort, Rank: -1, Text: "bye"})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait() // the Gets fail with ErrLost
		for _, c := range cs {
			_ = c.Close()
		}
	}()
	// Server.Close and Client.Close have joined their goroutines; only the
	// runtime's own (e.g. netpoll-related) may take a moment to go.
	for i := 0; runtime.NumGoroutine() > base; i++ {
		if i == 100 {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want <= %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConnectAndLostReports: OnConnect runs when a rank is accepted, and a
// lost-peer report reaches OnPeerLost before ReportLost returns.
func TestConnectAndLostReports(t *testing.T) {
	type lost struct{ rank, peer int }
	connects := make(chan int, 2)
	losts := make(chan lost, 2)
	s := startServer(t, 3, func(c *ServerConfig) {
		c.OnConnect = func(rank int) { connects <- rank }
		c.OnPeerLost = func(rank, peer int) { losts <- lost{rank, peer} }
	})
	c := dial(t, s, 2, nil)
	if r := <-connects; r != 2 {
		t.Fatalf("OnConnect(%d); want 2", r)
	}
	if err := c.ReportLost(testCtx(t), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-losts:
		if got != (lost{2, 0}) {
			t.Fatalf("OnPeerLost(%+v); want {2 0}", got)
		}
	default:
		t.Fatal("ReportLost returned before OnPeerLost ran")
	}
	// A report naming no rank of the job is answered but not passed on.
	if err := c.ReportLost(testCtx(t), 7); err != nil {
		t.Fatal(err)
	}
	if len(losts) != 0 {
		t.Fatalf("OnPeerLost called for rank 7 of a 3-rank job")
	}
}
