// Package tcp is the transport between ranks in different processes, on one
// host or several.
//
// Connections: a pair of ranks shares one connection, used both ways, as
// OpenMPI's TCP transport does. With one connection per direction, no
// frame carries the acknowledgement of the other direction's data, and the
// kernel sends a pure ACK segment for every message: on loopback that took
// a 4 µs ping-pong half round trip to 6 µs. A connection is dialed lazily
// by the first Send to a rank that has no connection with us yet (concurrent
// first Sends share one dial); a rank that already dialed us is answered on
// that connection. Frames from A to B travel only on the connection A's
// first Send to B chose, so they arrive in Send order. When two ranks dial
// each other at the same moment the lower rank's connection wins: the
// higher rank's dial is refused (verdict "retry", see hello.go) and its Send
// waits for the lower rank's connection to arrive. An endpoint looks for a
// connection and registers its dial under one lock, and decides about an
// accepted one under the same lock, so a pair never ends up with two
// (except for a rank talking to itself, which holds both ends). A
// connection is never redialed: a rank whose connection failed stays
// unreachable, as MPI expects of a lost process.
//
// Handshake: the dialer connects, both sides run the mutual challenge of
// package auth (label "gorun-tcp", key Config.Token), then the dialer sends a
// hello naming its rank and the rank it wants, which the acceptor confirms.
// Both sides then set TCP_NODELAY, so that small frames go out at once.
// Every step before that is under a deadline, so a silent or garbage
// connection costs one goroutine for at most Config.HandshakeTimeout.
//
// Sockets: once its handshake is done, a connection leaves the runtime's
// network poller (see sock): package net registers every socket, and then
// each segment and acknowledgement that arrives wakes a thread parked in
// epoll_wait, whether or not a goroutine waits on it — about two context
// switches per message, each taking the core from a spinning rank. Frames
// move with plain non-blocking raw system calls of at most 4 MiB each
// (rawIOMax: they never block, so the scheduler need not hand the P on). A
// writer facing a full send buffer polls for room for up to a millisecond
// (spinWritable); a goroutine that must wait longer for the socket (an
// idle reader, a writer to a slow peer) registers a duplicate of the
// descriptor for that wait only.
//
// Receiving: every connection has a reader goroutine, and the
// endpoint is a transport.Poller: Poll reads the connections from the
// caller's goroutine, so a rank that spins while it waits gets a reply
// without the 20–30 µs it costs here to wake a thread sleeping in the
// kernel. The sockets are read by whoever holds the connection's mutex: the
// reader, or a poller that got it with TryLock (a poller never waits; it
// skips a connection somebody else is reading). Both drive one resumable
// parser (read buffer, current header, payload offset), so a frame begun by
// one can be finished by the other; the Sink is called under the mutex,
// hence sequentially per peer and in stream order. Headers and small
// payloads come through a 16 KiB buffer, many frames per system call (a
// frame whose payload is all in that buffer goes to a transport.FrameSink
// in one call); a payload remainder of 16 KiB or more is read straight into
// the Sink's buffer. The reader reads until the socket says EAGAIN; a
// poller asks ppoll which sockets are readable and stops at a read that
// came back short (see drain). Either leaves at most an incomplete frame
// behind.
//
// The reader drains the socket and, while nobody polls, waits for it to
// become readable. The descriptor stays valid for pollers because only the
// reader's goroutine closes it, after it has marked the connection dead
// under the mutex. Each Poll marks the connections it visits; a reader that
// finds the mark set clears it and naps (100 µs, a Go timer) until a nap
// passes without a Poll, and then drains and waits for readiness again. So
// while a rank polls, its reader takes no lock and competes with no poller
// (a reader preempted while holding the mutex would stall every poller),
// and an idle endpoint burns no CPU. No wake-up is lost: the socket was
// drained to EAGAIN before every wait for readiness, the wait reports any
// data that arrived after that, and a frame that arrives after the last
// Poll is read at most about two naps later. A stream that ends (Bye, EOF,
// broken frame) while a poller reads it is recorded and left to the reader,
// which stops napping and reports it.
//
// Lost peers: a connection that ends without a Bye, breaks, or carries a
// frame that breaks the protocol makes the endpoint call Sink.PeerLost for
// that rank, once, with an error wrapping transport.ErrPeerLost, after the
// last frames it delivered. A Bye is delivered to the Sink like any frame,
// on the connection that carried the peer's frames (a rank that never sent
// us anything says goodbye without a delivery), and is never followed by
// PeerLost.
//
// Peers known lost: a dial to a host whose network was cut sees no answer
// at all and would wait out HandshakeTimeout. The engine hears of such a
// loss sooner from the launcher and passes it on through FailPeer, which
// ends the dials (and writes) waiting on that peer with the launcher's
// reason. Shorter dial attempts retried within the deadline would not help:
// the kernel already retransmits the SYN, and a host that stays silent
// gives no answer to any attempt, so only a notice can end the wait early.
//
// Shutdown: Close writes KindBye on every connection, half-closes them and waits (bounded) for the peer to finish, so an orderly
// close is never mistaken for a lost peer and no data is cut off by a reset.
package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"

	"github.com/gorun-hpc/gorun/runtime/auth"
	"github.com/gorun-hpc/gorun/runtime/transport"
)

// authLabel names this protocol in the auth exchange.
const authLabel = "gorun-tcp"

// DefaultHandshakeTimeout is used when Config.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 10 * time.Second

// closeTimeout bounds how long Close waits for peers to take its Byes and
// finish; only a stalled or vanished peer ever makes it wait that long. A
// variable so that tests can shorten it.
var closeTimeout = 5 * time.Second

const (
	// maxHandshakes bounds the accepted connections that are still
	// authenticating; the accept loop waits for a free slot beyond it.
	maxHandshakes = 64
	// readBufferSize is the read buffer of a connection. Small
	// frames are read many to a system call; a payload larger than what is
	// buffered is read directly into the Sink's buffer. Kept small because a
	// rank may hold a connection with every other rank.
	readBufferSize = 16 << 10
)

// Config configures an Endpoint.
type Config struct {
	// Rank is this endpoint's world rank, in [0, math.MaxInt32].
	Rank int
	// Token is the job secret. Both sides of every connection prove it
	// (auth label "gorun-tcp") before any frame moves. Listen copies it.
	Token []byte
	// Sink receives inbound frames.
	Sink transport.Sink
	// Listen is the address to listen on; "127.0.0.1:0" when empty.
	Listen string
	// Resolve returns the address of rank's endpoint. It may block (it reads
	// the rendezvous store); its context is cancelled by Close. It is called
	// lazily, on the first Send to rank, and again after a failure.
	Resolve func(ctx context.Context, rank int) (string, error)
	// HandshakeTimeout bounds dialing plus the whole handshake, in both
	// directions; DefaultHandshakeTimeout when zero.
	HandshakeTimeout time.Duration
}

// Endpoint is a rank's TCP endpoint: a listener for peers' connections and
// the connections it dialed. It is safe for concurrent use.
type Endpoint struct {
	rank      int
	token     []byte
	sink      transport.Sink
	resolve   func(context.Context, int) (string, error)
	handshake time.Duration
	ln        net.Listener

	ctx    context.Context // cancelled by Close: aborts Resolve and dials
	cancel context.CancelFunc
	closed atomic.Bool
	once   sync.Once
	wg     sync.WaitGroup // every goroutine of the endpoint
	slots  chan struct{}  // handshakes in progress on accepted connections
	dials  singleflight.Group
	out    sync.Map // rank → *conn Send uses for it: established (dialed by either side), or a failed dial

	mu      sync.Mutex
	conns   map[*conn]struct{}              // established connections, until their reader ends
	polling atomic.Pointer[[]*conn]         // copy of conns for Poll, replaced when conns changes
	byRank  map[int][]*conn                 // rank → its established connections, oldest first
	lossErr map[int]*peerError              // rank → why one of its connections ended without a Bye, while others live
	pending map[*net.TCPConn]int            // connections still in their handshake → the rank dialed, -1 if accepted
	gone    map[int]bool                    // ranks reported lost or seen closing
	dialing map[int]context.CancelCauseFunc // rank → cancels its dial in progress
	failed  map[int]error                   // rank → the cause FailPeer gave for it
	failAll error                           // the cause FailPeer gave for every rank
	added   chan struct{}                   // closed and replaced when a connection is registered
}

// Listen starts an endpoint listening on cfg.Listen. ctx bounds only the
// setting up of the listener; the endpoint lives until Close.
func Listen(ctx context.Context, cfg Config) (*Endpoint, error) {
	switch {
	case cfg.Rank < 0 || cfg.Rank > math.MaxInt32:
		return nil, fmt.Errorf("tcp: rank %d out of range", cfg.Rank)
	case len(cfg.Token) == 0:
		return nil, fmt.Errorf("tcp: rank %d: %w", cfg.Rank, auth.ErrNoKey)
	case cfg.Sink == nil:
		return nil, fmt.Errorf("tcp: rank %d: nil sink", cfg.Rank)
	case cfg.Resolve == nil:
		return nil, fmt.Errorf("tcp: rank %d: nil Resolve", cfg.Rank)
	case cfg.HandshakeTimeout < 0:
		return nil, fmt.Errorf("tcp: negative handshake timeout %v", cfg.HandshakeTimeout)
	}
	addr := cfg.Listen
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: rank %d: %w", cfg.Rank, err)
	}
	e := &Endpoint{
		rank:      cfg.Rank,
		token:     append([]byte(nil), cfg.Token...),
		sink:      cfg.Sink,
		resolve:   cfg.Resolve,
		handshake: cfg.HandshakeTimeout,
		ln:        ln,
		slots:     make(chan struct{}, maxHandshakes),
		conns:     make(map[*conn]struct{}),
		byRank:    make(map[int][]*conn),
		lossErr:   make(map[int]*peerError),
		added:     make(chan struct{}),
		pending:   make(map[*net.TCPConn]int),
		gone:      make(map[int]bool),
		dialing:   make(map[int]context.CancelCauseFunc),
		failed:    make(map[int]error),
	}
	if e.handshake == 0 {
		e.handshake = DefaultHandshakeTimeout
	}
	// The endpoint outlives ctx but keeps its values for Resolve.
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.wg.Add(1)
	go e.acceptLoop() // exits when Close closes the listener; joined by Close
	return e, nil
}

// Addr returns the address the endpoint listens on, for the rendezvous.
func (e *Endpoint) Addr() string { return e.ln.Addr().String() }

// Send writes h and payload to rank h.Dst, dialing it first if this is the
// first Send there; h.Src must be this endpoint's rank and len(payload)
// h.Len. KindBye is reserved to Close. Header and payload go out in one
// vectored write, straight from payload: the caller may reuse it once Send
// returns. Send blocks while the peer is not reading (TCP back-pressure).
//
// Errors: ErrClosed (wrapped) after Close; an error wrapping ErrPeerLost and
// naming the rank and address when the dial, the handshake or the write
// failed or the peer has gone or closed. A failed connection is not redialed:
// later Sends to that rank return the same error.
func (e *Endpoint) Send(h transport.Header, payload []byte) error {
	if err := e.validate(h, payload); err != nil {
		return err
	}
	if e.closed.Load() {
		return e.errClosed()
	}
	c, err := e.conn(int(h.Dst))
	if err != nil {
		return err
	}
	return c.send(h, payload)
}

func (e *Endpoint) errClosed() error {
	return fmt.Errorf("tcp: send on rank %d: %w", e.rank, transport.ErrClosed)
}

// conn returns the connection Send uses for rank. The first Send to a rank
// chooses it, once: the oldest established connection with that rank (one
// the peer dialed), or else a new one dialed now.
func (e *Endpoint) conn(rank int) (*conn, error) {
	if v, ok := e.out.Load(rank); ok {
		return v.(*conn).usable()
	}
	v, err, _ := e.dials.Do(strconv.Itoa(rank), func() (any, error) {
		if v, ok := e.out.Load(rank); ok {
			return v, nil
		}
		c, err := e.dial(rank)
		if c != nil {
			e.out.Store(rank, c)
		}
		return c, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*conn).usable()
}

// Close closes the endpoint: it stops accepting, writes KindBye on every
// connection, waits (at most a few seconds, for a stalled peer) for peers to
// finish and for every goroutine of the endpoint to exit. The Sink gets no
// call after Close returns. Later Sends fail with ErrClosed. Close is
// idempotent, and concurrent calls all return once it is done. It must not be
// called from inside a Sink method of this endpoint.
func (e *Endpoint) Close() error {
	e.once.Do(e.shutdown)
	return nil
}

func (e *Endpoint) shutdown() {
	e.mu.Lock()
	e.closed.Store(true)
	conns := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	for c := range e.pending {
		c.Close() // its handshake fails and its goroutine (or dialer) gives up
	}
	e.mu.Unlock()
	e.cancel()
	e.ln.Close()
	deadline := time.Now().Add(closeTimeout)
	// Each Bye follows the data sent on its connection, and tells the peer
	// that we are done.
	for _, c := range conns {
		c.bye(deadline)
	}
	e.wg.Wait()
}

// acceptLoop accepts connections and starts a goroutine for each.
func (e *Endpoint) acceptLoop() {
	defer e.wg.Done()
	var backoff time.Duration
	for {
		select {
		case e.slots <- struct{}{}:
		case <-e.ctx.Done():
			return
		}
		nc, err := e.ln.Accept()
		if err != nil {
			<-e.slots
			if e.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: wait a little and retry,
			// rather than spin or give up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-e.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		conn := nc.(*net.TCPConn)
		if !e.addPending(conn) {
			<-e.slots
			conn.Close()
			return
		}
		e.wg.Add(1)
		go e.serve(conn) // exits when the connection ends (peer's Bye or EOF, a failed handshake, or Close); joined by Close
	}
}

// addPending registers an accepted connection in its handshake so that
// Close can abort it; false if the endpoint is closed.
func (e *Endpoint) addPending(c *net.TCPConn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return false
	}
	e.pending[c] = -1
	return true
}

// serve runs the acceptor's handshake on conn, then reads its frames.
func (e *Endpoint) serve(conn *net.TCPConn) {
	defer e.wg.Done()
	defer conn.Close()
	c, ok := e.admit(conn)
	<-e.slots
	if ok {
		c.follow()
	}
}

// admit runs the acceptor's handshake on conn and, when the dialer is to
// be served, registers the connection.
func (e *Endpoint) admit(conn *net.TCPConn) (*conn, bool) {
	src, err := e.acceptHandshake(conn)
	e.mu.Lock()
	if err != nil || e.closed.Load() {
		// A connection that fails its handshake is dropped without a word:
		// it is not (yet) a rank, so there is nobody to tell.
		delete(e.pending, conn)
		e.mu.Unlock()
		return nil, false
	}
	if src > e.rank && (e.dialing[src] != nil || len(e.byRank[src]) > 0) {
		// Both ranks dialed each other: the lower rank's connection is the
		// one, and the dialer waits for it (or already has it).
		delete(e.pending, conn)
		e.mu.Unlock()
		_, _ = conn.Write([]byte{verdictRetry})
		return nil, false
	}
	// The verdict is written under e.mu, so that this rank's first Send to
	// src, which takes e.mu to look for a connection before it dials,
	// either finds this one or made us refuse it above. The write of one
	// byte to a fresh socket does not block (and the handshake deadline
	// bounds it).
	c, err := e.acceptLocked(conn, src)
	delete(e.pending, conn)
	e.mu.Unlock()
	return c, err == nil
}

// acceptLocked confirms the accepted connection conn from rank src to the
// dialer, takes it out of the network poller and registers it. The caller
// holds e.mu.
func (e *Endpoint) acceptLocked(conn *net.TCPConn, src int) (*conn, error) {
	if _, err := conn.Write([]byte{verdictOK}); err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	// As on the dialer's side: small frames go out at once. A socket
	// option, so it holds for the duplicate that detach makes.
	if err := conn.SetNoDelay(true); err != nil {
		return nil, err
	}
	sk, err := detach(conn)
	if err != nil {
		return nil, err
	}
	c := newConn(e, sk, src, sk.addr, false)
	e.addConnLocked(c)
	return c, nil
}

// addConnLocked registers an established connection: Poll reads it, and
// the first Send to its rank may choose it. The caller holds e.mu and then
// runs c.follow (in a goroutine of the endpoint).
func (e *Endpoint) addConnLocked(c *conn) {
	e.conns[c] = struct{}{}
	e.byRank[c.rank] = append(e.byRank[c.rank], c)
	e.setPolling()
	close(e.added)
	e.added = make(chan struct{})
}

// follow is the goroutine of an established connection: it runs its
// reader until the peer's stream ends, hands that end on and closes the
// socket.
func (c *conn) follow() {
	c.run()
	c.finish()
	c.s.close() // nobody reads it any more; a write in progress finishes first
}

// ended unregisters connection c, whose stream from the peer ended with a
// Bye (bye) or otherwise (perr). A rank is reported lost when its last
// connection ends, if one of them ended without a Bye and none brought one
// (see lost): so the Sink hears of the loss after every frame the peer
// sent, whichever connection carried them.
func (e *Endpoint) ended(c *conn, perr *peerError, bye bool) {
	e.mu.Lock()
	delete(e.conns, c)
	e.setPolling()
	cs := e.byRank[c.rank]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i:i], cs[i+1:]...)
			break
		}
	}
	if !bye && e.lossErr[c.rank] == nil {
		e.lossErr[c.rank] = perr
	}
	var report *peerError
	if len(cs) == 0 {
		report = e.lossErr[c.rank]
		delete(e.byRank, c.rank)
		delete(e.lossErr, c.rank)
	} else {
		e.byRank[c.rank] = cs
	}
	e.mu.Unlock()
	if report != nil {
		e.lost(c.rank, report)
	}
}

// acceptHandshake authenticates the dialer and reads its hello; it returns
// the dialer's rank. The caller writes the verdict.
func (e *Endpoint) acceptHandshake(conn net.Conn) (int, error) {
	if err := conn.SetDeadline(time.Now().Add(e.handshake)); err != nil {
		return 0, err
	}
	if err := auth.Server(conn, e.token, authLabel); err != nil {
		return 0, err
	}
	var b [helloSize]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return 0, err
	}
	src, dst, err := parseHello(b[:])
	if err != nil {
		return 0, err
	}
	if dst != e.rank {
		_, _ = conn.Write([]byte{verdictWrongRank})
		return 0, fmt.Errorf("tcp: rank %d dialed rank %d, reached rank %d", src, dst, e.rank)
	}
	return src, nil
}

// dial connects to rank and runs the dialer's handshake. It returns a nil
// connection for failures worth retrying (Resolve's, or Close's) and a
// failed connection, for Send to keep, for the rest. FailPeer cuts it short: Resolve,
// the dial and the handshake all end when it names rank, and the dial fails
// with its cause.
func (e *Endpoint) dial(rank int) (*conn, error) {
	have, ctx, cancel, err := e.startDial(rank)
	if have != nil {
		return have, nil
	}
	if err != nil {
		perr := &peerError{op: "send to", rank: rank, err: err}
		return &conn{e: e, rank: rank, err: perr}, perr
	}
	defer e.endDial(rank, cancel)
	addr, err := e.resolve(ctx, rank)
	if err != nil {
		switch {
		case e.closed.Load():
			return nil, e.errClosed()
		case ctx.Err() != nil:
			perr := &peerError{op: "send to", rank: rank, err: context.Cause(ctx)}
			return &conn{e: e, rank: rank, err: perr}, perr
		}
		return nil, fmt.Errorf("tcp: resolve rank %d: %w", rank, err)
	}
	fail := func(err error) (*conn, error) {
		if e.closed.Load() {
			return nil, e.errClosed()
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx) // FailPeer's reason, not "operation was canceled"
		}
		perr := &peerError{op: "dial", rank: rank, addr: addr, err: err}
		return &conn{e: e, rank: rank, addr: addr, err: perr}, perr
	}
	deadline := time.Now().Add(e.handshake)
	d := net.Dialer{Deadline: deadline}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(err)
	}
	conn := nc.(*net.TCPConn)
	// The deadline is set before FailPeer can see the connection, which
	// ends the handshake by moving it into the past.
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return fail(err)
	}
	if err := e.addDialed(conn, rank); err != nil {
		conn.Close()
		return fail(err)
	}
	if err := e.dialHandshake(conn, rank); err != nil {
		e.mu.Lock()
		delete(e.pending, conn)
		e.mu.Unlock()
		conn.Close()
		if errors.Is(err, errRetry) {
			return e.awaitConn(ctx, rank, addr, deadline)
		}
		return fail(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.pending, conn)
	if e.closed.Load() {
		conn.Close()
		return nil, e.errClosed()
	}
	if err := e.failedLocked(rank); err != nil {
		conn.Close()
		return fail(err)
	}
	sk, err := detach(conn)
	if err != nil {
		conn.Close()
		return fail(err)
	}
	c := newConn(e, sk, rank, addr, true)
	e.addConnLocked(c)
	e.wg.Add(1)
	go func() { // exits when the peer's stream ends (its Bye, its loss, or Close); joined by Close
		defer e.wg.Done()
		c.follow()
	}()
	return c, nil
}

// startDial returns the oldest established connection with rank (one the
// peer dialed), or the cause FailPeer already gave for rank, or else
// registers a dial to rank that FailPeer can cancel. Looking and
// registering under one hold of e.mu pairs with serve: a connection from
// rank is either found here or, when rank is the higher, refused while this
// dial goes on.
func (e *Endpoint) startDial(rank int) (*conn, context.Context, context.CancelCauseFunc, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cs := e.byRank[rank]; len(cs) > 0 {
		return cs[0], nil, nil, nil
	}
	if err := e.failedLocked(rank); err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(e.ctx)
	e.dialing[rank] = cancel
	return nil, ctx, cancel, nil
}

// awaitConn waits, until deadline, for the connection that rank dials to
// this endpoint: rank refused ours because it dials us at the same time
// (see serve).
func (e *Endpoint) awaitConn(ctx context.Context, rank int, addr string, deadline time.Time) (*conn, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		e.mu.Lock()
		cs, added := e.byRank[rank], e.added
		e.mu.Unlock()
		if len(cs) > 0 {
			return cs[0], nil
		}
		var err error
		select {
		case <-added:
			continue
		case <-ctx.Done():
			if e.closed.Load() {
				return nil, e.errClosed()
			}
			err = context.Cause(ctx)
		case <-t.C:
			err = errNoCrossDial
		}
		perr := &peerError{op: "dial", rank: rank, addr: addr, err: err}
		return &conn{e: e, rank: rank, addr: addr, err: perr}, perr
	}
}

// endDial unregisters the dial to rank.
func (e *Endpoint) endDial(rank int, cancel context.CancelCauseFunc) {
	e.mu.Lock()
	delete(e.dialing, rank)
	e.mu.Unlock()
	cancel(nil)
}

// addDialed registers a dialed connection in its handshake so that Close
// and FailPeer can end it, unless either already applies.
func (e *Endpoint) addDialed(c *net.TCPConn, rank int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return e.errClosed()
	}
	if err := e.failedLocked(rank); err != nil {
		return err
	}
	e.pending[c] = rank
	return nil
}

// failedLocked returns the cause FailPeer gave for rank, or nil. The caller
// holds e.mu.
func (e *Endpoint) failedLocked(rank int) error {
	if err := e.failed[rank]; err != nil {
		return err
	}
	return e.failAll
}

// FailPeer implements transport.PeerFailer: Sends to rank (every rank when
// rank < 0) fail with an error wrapping transport.ErrPeerLost and cause. A
// dial in progress ends at once (Resolve's context is cancelled, a
// handshake's deadline moves into the past); a Send waiting for room on an
// established connection fails within waitSlice, breaking that stream. The
// rank is not reported to the Sink as lost: the caller already knows.
func (e *Endpoint) FailPeer(rank int, cause error) {
	if cause == nil {
		cause = errors.New("failed by the caller")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return
	}
	switch {
	case rank < 0 && e.failAll == nil:
		e.failAll = cause
	case rank >= 0 && e.failed[rank] == nil:
		e.failed[rank] = cause
	}
	for r, cancel := range e.dialing {
		if rank < 0 || r == rank {
			cancel(e.failedLocked(r))
		}
	}
	for conn, r := range e.pending {
		if r >= 0 && (rank < 0 || r == rank) {
			_ = conn.SetDeadline(aLongTimeAgo) // the handshake fails now; dial reports the cause
		}
	}
	for c := range e.conns {
		if rank < 0 || c.rank == rank {
			c.fail(e.failedLocked(c.rank))
		}
	}
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

func (e *Endpoint) dialHandshake(conn *net.TCPConn, rank int) error {
	if err := auth.Client(conn, e.token, authLabel); err != nil {
		return err
	}
	if _, err := conn.Write(appendHello(nil, e.rank, rank)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	var v [1]byte
	if _, err := io.ReadFull(conn, v[:]); err != nil {
		return fmt.Errorf("read hello verdict: %w", err)
	}
	switch v[0] {
	case verdictOK:
	case verdictWrongRank:
		return fmt.Errorf("the endpoint there is not rank %d", rank)
	case verdictRetry:
		return errRetry
	default:
		return fmt.Errorf("bad hello verdict %d", v[0])
	}
	if err := conn.SetNoDelay(true); err != nil {
		return err
	}
	return conn.SetDeadline(time.Time{})
}

// markGone records that rank closed in order: it will not be reported lost.
func (e *Endpoint) markGone(rank int) {
	e.mu.Lock()
	e.gone[rank] = true
	e.mu.Unlock()
}

// lost reports rank to the Sink as lost, once, unless it closed in order,
// FailPeer named it, or this endpoint is closing.
func (e *Endpoint) lost(rank int, err error) {
	e.mu.Lock()
	if e.gone[rank] || e.closed.Load() || e.failedLocked(rank) != nil {
		e.mu.Unlock()
		return
	}
	e.gone[rank] = true
	e.mu.Unlock()
	e.sink.PeerLost(rank, err)
}

// validate checks a frame before it is sent.
func (e *Endpoint) validate(h transport.Header, payload []byte) error {
	if err := transport.CheckSend(e.rank, &h, payload); err != nil {
		return fmt.Errorf("tcp: %w", err)
	}
	return nil
}

// peerError describes a failure on the way to or from a peer. errors.Is
// matches both transport.ErrPeerLost and the cause.
type peerError struct {
	op   string // "dial", "send to", "connection to", "connection from"
	rank int
	addr string
	err  error
}

func (p *peerError) Error() string {
	if p.addr == "" {
		return fmt.Sprintf("tcp: %s rank %d: %v", p.op, p.rank, p.err)
	}
	return fmt.Sprintf("tcp: %s rank %d at %s: %v", p.op, p.rank, p.addr, p.err)
}

func (p *peerError) Unwrap() []error { return []error{transport.ErrPeerLost, p.err} }

var (
	errRetry       = errors.New("the peer dials us at the same time")
	errNoCrossDial = errors.New("the peer refused our connection in favour of its own, which did not arrive in time")
	errNoBye       = errors.New("connection closed without bye")
	errPeerClosed  = errors.New("the peer closed its endpoint")
)

// usable returns c, or the error that makes it unusable.
func (c *conn) usable() (*conn, error) {
	if c.s == nil {
		return nil, c.err
	}
	return c, nil
}

func (c *conn) send(h transport.Header, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.err != nil {
		return c.err
	}
	if p := c.failed.Load(); p != nil {
		return p
	}
	if p := c.peerErr.Load(); p != nil {
		return p
	}
	h.Put(c.whdr[:])
	err := c.s.write(c.whdr[:], payload)
	if err == nil {
		return nil
	}
	// A partial frame may have gone out: the stream is unusable.
	switch p := c.peerErr.Load(); {
	case c.e.closed.Load():
		c.err = c.e.errClosed()
	case c.failed.Load() != nil:
		c.err = c.failed.Load()
	case p != nil:
		c.err = p
	default:
		c.err = &peerError{op: "send to", rank: c.rank, addr: c.addr, err: err}
	}
	c.s.shutdown(unix.SHUT_RDWR) // the reader sees the end and closes it
	return c.err
}

// fail makes the connection refuse frames, with cause, and ends a write
// waiting for room (within waitSlice): the peer will not read any more.
func (c *conn) fail(cause error) {
	c.failed.CompareAndSwap(nil, &peerError{op: "send to", rank: c.rank, addr: c.addr, err: cause})
	c.s.setWriteDeadline(aLongTimeAgo)
}
