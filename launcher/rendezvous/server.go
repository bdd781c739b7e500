package rendezvous

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gorun-hpc/gorun/runtime/auth"
)

const (
	defaultHelloTimeout = 10 * time.Second
	writeTimeout        = 30 * time.Second
	maxPending          = 4096     // outstanding get/fence requests per connection
	maxOutFrames        = 16384    // frames queued to one connection
	maxOutBytes         = 32 << 20 // bytes queued to one connection
	maxPreauth          = 1024     // connections in the auth/hello phase
	maxHistory          = 1024     // events replayed to ranks that connect later
)

// ServerConfig configures a [Server].
type ServerConfig struct {
	// Size is the number of ranks in the job (>= 1, < 2^31).
	Size int
	// Token is the job secret; clients must prove it (auth.Server with label
	// AuthLabel). Must not be empty.
	Token []byte
	// OnAbort, if set, is called when a rank asks to abort the job, from
	// that rank's connection goroutine, before the rank's Abort returns.
	// It may call Notify but must not call Close (Close waits for the
	// goroutine that runs OnAbort); start a goroutine for that.
	OnAbort func(rank, code int, msg string)
	// OnFinalize, if set, is called when a rank reports Finalize, under the
	// same rules as OnAbort.
	OnFinalize func(rank int)
	// OnConnect, if set, is called once a rank has proved the token and
	// been accepted (the rank has called mpi.Init), under the same rules as
	// OnAbort.
	OnConnect func(rank int)
	// OnPeerLost, if set, is called when rank reports that it lost its
	// connection to peer, before the report is answered, so before the
	// reporting rank can act on the loss. The launcher uses it to tell a
	// rank that failed from one that failed because a peer died first.
	// Same rules as OnAbort.
	OnPeerLost func(rank, peer int)
	// OnDisconnect, if set, is called when the connection of an accepted
	// rank ends while the server is not closing, under the same rules as
	// OnAbort. err is nil for a clean close by the client (EOF), otherwise
	// the reason. The rank may connect again afterwards.
	OnDisconnect func(rank int, err error)
	// Logger receives connection errors. Nil discards them.
	Logger *slog.Logger

	// helloTimeout bounds the auth and hello phase; zero means
	// defaultHelloTimeout. Unexported so that only tests shorten it.
	helloTimeout time.Duration
	// parked, if set, is called (with the server's lock held) when a get
	// for key starts waiting. For tests.
	parked func(key string)
}

// Server is the rendezvous server of one job. Its methods are safe for
// concurrent use.
type Server struct {
	cfg          ServerConfig
	log          *slog.Logger
	helloTimeout time.Duration
	ln           net.Listener // nil for servers made by newServer only (tests)
	wg           sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	conns    map[*sconn]struct{} // every open connection, authenticated or not
	preauth  int                 // connections still in the auth/hello phase
	ranks    []*sconn            // accepted connection of each rank, or nil
	kv       map[string][]byte   // the store; values are never mutated
	kvBytes  int                 // sum of len(value) over kv
	getWait  map[string][]waiter // pending gets per key
	calls    []uint64            // number of fence requests made by each rank
	done     uint64              // number of completed fence generations
	arrivals map[uint64]int      // generation -> ranks that have reached it
	fenceW   map[uint64][]waiter // pending fences per generation
	history  [][]byte            // encoded event frames, oldest first
}

type waiter struct {
	c  *sconn
	id uint64
}

// sconn is the server side of one connection.
type sconn struct {
	nc   net.Conn
	addr string

	// Guarded by Server.mu.
	rank   int               // -1 until the hello is accepted
	gets   map[uint64]string // pending get id -> key
	fences map[uint64]uint64 // pending fence id -> generation

	omu      sync.Mutex // guards out, outBytes, dead; taken after Server.mu
	out      [][]byte
	outBytes int
	dead     bool
	wake     chan struct{} // capacity 1: the writer has work
	gone     chan struct{} // closed by kill
}

// Listen starts a rendezvous server on addr (e.g. "127.0.0.1:0") and serves
// in background goroutines until Close. ctx bounds only the binding of the
// listener (as with net.ListenConfig.Listen); it does not stop the server.
func Listen(ctx context.Context, addr string, cfg ServerConfig) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.acceptLoop() // owner: s; exits when Close closes the listener
	return s, nil
}

// newServer returns a server with no listener; connections are handed to it
// with serve.
func newServer(cfg ServerConfig) (*Server, error) {
	if cfg.Size < 1 || !fitsInt32(int64(cfg.Size)) {
		return nil, fmt.Errorf("rendezvous: job size %d: must be in [1, 2^31)", cfg.Size)
	}
	if len(cfg.Token) == 0 {
		return nil, fmt.Errorf("rendezvous: empty job token")
	}
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger,
		helloTimeout: cfg.helloTimeout,
		conns:        make(map[*sconn]struct{}),
		ranks:        make([]*sconn, cfg.Size),
		kv:           make(map[string][]byte),
		getWait:      make(map[string][]waiter),
		calls:        make([]uint64, cfg.Size),
		arrivals:     make(map[uint64]int),
		fenceW:       make(map[uint64][]waiter),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.helloTimeout <= 0 {
		s.helloTimeout = defaultHelloTimeout
	}
	s.cfg.Token = append([]byte(nil), cfg.Token...)
	return s, nil
}

// Addr returns the host:port the server is bound to.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops the server: it closes the listener and every connection and
// waits for all of the server's goroutines. Clients see EventLost. Close is
// idempotent and always returns nil. It must not be called from OnAbort,
// OnFinalize or OnDisconnect.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.ln != nil {
			_ = s.ln.Close()
		}
		for c := range s.conns {
			c.kill()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Notify sends ev to every connected rank, in the order of Notify calls, and
// remembers it (up to 1024 events) for ranks that connect later, which get
// the past events right after they are accepted. It never blocks on the
// network: a rank whose connection has too much queued is disconnected.
// Text is truncated to MaxTextLen bytes. Safe for concurrent use; no-op
// after Close.
func (s *Server) Notify(ev Event) {
	f, err := encodeFrame(&msg{Op: opEvent, Kind: uint8(ev.Kind), Rank: clampInt32(ev.Rank),
		Code: clampInt32(ev.Code), Text: truncateText(ev.Text)})
	if err != nil { // cannot happen: every field is clamped
		s.log.Error("rendezvous: encode event", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if len(s.history) < maxHistory {
		s.history = append(s.history, f)
	}
	for _, c := range s.ranks {
		if c != nil {
			c.enqueue(s, f)
		}
	}
}

func clampInt32(v int) int {
	return int(max(min(int64(v), 1<<31-1), -1<<31))
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (e.g. out of file descriptors): back off
			// briefly rather than spin, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("rendezvous: accept", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			<-t.C
			continue
		}
		delay = 0
		s.serve(nc)
	}
}

// serve takes ownership of nc and serves it in a new goroutine.
func (s *Server) serve(nc net.Conn) {
	c := &sconn{
		nc:     nc,
		addr:   nc.RemoteAddr().String(),
		rank:   -1,
		gets:   make(map[uint64]string),
		fences: make(map[uint64]uint64),
		wake:   make(chan struct{}, 1),
		gone:   make(chan struct{}),
	}
	s.mu.Lock()
	if s.closed || s.preauth >= maxPreauth {
		full := !s.closed
		s.mu.Unlock()
		if full {
			s.log.Warn("rendezvous: too many connections in the handshake; refusing", "remote", c.addr)
		}
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.preauth++
	s.wg.Add(1)
	s.mu.Unlock()
	go s.handle(c) // owner: s; exits when the connection fails or is killed (by Close)
}

// handle runs the handshake and then the read loop of c.
func (s *Server) handle(c *sconn) {
	defer s.wg.Done()
	br := bufio.NewReader(c.nc)
	err := s.handshake(c, br)
	s.mu.Lock()
	s.preauth--
	closing := s.closed
	s.mu.Unlock()
	if err != nil {
		if !closing {
			s.log.Warn("rendezvous: handshake failed", "remote", c.addr, "err", err)
		}
		s.drop(c)
		return
	}
	s.wg.Add(1)
	go s.writeLoop(c) // owner: s; exits when c is killed (by drop or Close) or a write fails
	err = s.readLoop(c, br)
	rank := c.rank // only this goroutine writes rank after the handshake
	s.drop(c)
	s.mu.Lock()
	closing = s.closed
	s.mu.Unlock()
	if closing {
		return
	}
	if errors.Is(err, io.EOF) {
		err = nil
		s.log.Debug("rendezvous: rank disconnected", "rank", rank, "remote", c.addr)
	} else {
		s.log.Warn("rendezvous: rank connection closed", "rank", rank, "remote", c.addr, "err", err)
	}
	if s.cfg.OnDisconnect != nil {
		s.cfg.OnDisconnect(rank, err)
	}
}

// handshake authenticates the peer and reads its hello; on success c is
// registered as its rank, with the welcome and the event history queued.
func (s *Server) handshake(c *sconn, br *bufio.Reader) error {
	if err := c.nc.SetDeadline(time.Now().Add(s.helloTimeout)); err != nil {
		return err
	}
	if err := auth.Server(c.nc, s.cfg.Token, AuthLabel); err != nil {
		return err
	}
	m, err := readFrame(br)
	if err != nil {
		return fmt.Errorf("rendezvous: read hello: %w", err)
	}
	var reason int
	var text string
	s.mu.Lock()
	switch {
	case m.Op != opHello:
		reason, text = rejectProtocol, fmt.Sprintf("expected hello, got op %d", m.Op)
	case s.closed:
		reason, text = rejectClosing, "server is closing"
	case m.Rank < 0 || m.Rank >= s.cfg.Size:
		reason, text = rejectBadRank, fmt.Sprintf("rank %d is outside [0, %d)", m.Rank, s.cfg.Size)
	case s.ranks[m.Rank] != nil:
		reason, text = rejectRankTaken, fmt.Sprintf("rank %d is already connected (from %s)", m.Rank, s.ranks[m.Rank].addr)
	default:
		c.rank = m.Rank
		s.ranks[m.Rank] = c
		welcome, _ := encodeFrame(&msg{Op: opWelcome, Code: s.cfg.Size}) // small fields: cannot fail
		c.enqueue(s, welcome)
		for _, f := range s.history {
			c.enqueue(s, f)
		}
	}
	s.mu.Unlock()
	if reason != 0 {
		if f, err := encodeFrame(&msg{Op: opReject, Code: reason, Text: text}); err == nil {
			_, _ = c.nc.Write(f) // best effort, under the handshake deadline
		}
		return fmt.Errorf("rendezvous: rejected hello: %s", text)
	}
	if s.cfg.OnConnect != nil {
		s.cfg.OnConnect(c.rank)
	}
	return c.nc.SetDeadline(time.Time{})
}

// readLoop serves the requests of an accepted rank until the connection
// fails or a frame violates the protocol.
func (s *Server) readLoop(c *sconn, br *bufio.Reader) error {
	for {
		m, err := readFrame(br)
		if err != nil {
			return err
		}
		switch m.Op {
		case opSet:
			s.set(c, &m)
		case opGet:
			s.get(c, &m)
		case opFence:
			s.fence(c, &m)
		case opCancel:
			s.cancel(c, m.ID)
		case opAbort:
			if s.cfg.OnAbort != nil {
				s.cfg.OnAbort(c.rank, m.Code, m.Text)
			}
			s.reply(c, m.ID, nil)
		case opFinalize:
			if s.cfg.OnFinalize != nil {
				s.cfg.OnFinalize(c.rank)
			}
			s.reply(c, m.ID, nil)
		case opLost:
			if s.cfg.OnPeerLost != nil && m.Code >= 0 && m.Code < s.cfg.Size {
				s.cfg.OnPeerLost(c.rank, m.Code)
			}
			s.reply(c, m.ID, nil)
		default:
			return fmt.Errorf("%w: unexpected op %d from a client", errFrame, m.Op)
		}
	}
}

// reply queues the answer to request id of c; value is shared, not copied.
func (s *Server) reply(c *sconn, id uint64, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replyLocked(c, id, value)
}

func (s *Server) replyLocked(c *sconn, id uint64, value []byte) {
	f, err := encodeFrame(&msg{Op: opReply, ID: id, Value: value})
	if err != nil { // values in the store are within limits: cannot happen
		s.log.Error("rendezvous: encode reply", "err", err)
		c.kill()
		return
	}
	c.enqueue(s, f)
}

func (s *Server) refuseLocked(c *sconn, id uint64, code int, text string) {
	f, _ := encodeFrame(&msg{Op: opReply, ID: id, Code: code, Text: text}) // short text: cannot fail
	c.enqueue(s, f)
}

func (s *Server) set(c *sconn, m *msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Key == "" {
		s.refuseLocked(c, m.ID, replyInvalid, "empty key")
		return
	}
	value := m.Value
	if value == nil {
		value = []byte{}
	}
	old, exists := s.kv[m.Key]
	if !exists && len(s.kv) >= MaxKeys {
		s.refuseLocked(c, m.ID, replyFull, fmt.Sprintf("store full: %d keys", MaxKeys))
		return
	}
	if s.kvBytes-len(old)+len(value) > maxStoreBytes {
		s.refuseLocked(c, m.ID, replyFull, fmt.Sprintf("store full: %d bytes of values", maxStoreBytes))
		return
	}
	s.kv[m.Key] = value // m.Value was freshly allocated by the decoder: ours now
	s.kvBytes += len(value) - len(old)
	for _, w := range s.getWait[m.Key] {
		delete(w.c.gets, w.id)
		s.replyLocked(w.c, w.id, value)
	}
	delete(s.getWait, m.Key)
	s.replyLocked(c, m.ID, nil)
}

func (s *Server) get(c *sconn, m *msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.kv[m.Key]; ok {
		s.replyLocked(c, m.ID, v)
		return
	}
	if m.Key == "" {
		s.refuseLocked(c, m.ID, replyInvalid, "empty key")
		return
	}
	if !s.admitLocked(c, m.ID) {
		return
	}
	c.gets[m.ID] = m.Key
	s.getWait[m.Key] = append(s.getWait[m.Key], waiter{c, m.ID})
	if s.cfg.parked != nil {
		s.cfg.parked(m.Key)
	}
}

// admitLocked reports whether c may have one more pending request, and
// refuses request id if not.
func (s *Server) admitLocked(c *sconn, id uint64) bool {
	_, dupGet := c.gets[id]
	_, dupFence := c.fences[id]
	switch {
	case dupGet || dupFence:
		s.refuseLocked(c, id, replyInvalid, fmt.Sprintf("request id %d is already pending", id))
		return false
	case len(c.gets)+len(c.fences) >= maxPending:
		s.refuseLocked(c, id, replyFull, fmt.Sprintf("more than %d pending requests", maxPending))
		return false
	}
	return true
}

// fence records that c's rank reached its next fence generation, and
// completes every generation all ranks have reached.
func (s *Server) fence(c *sconn, m *msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.admitLocked(c, m.ID) {
		return
	}
	gen := s.calls[c.rank]
	s.calls[c.rank]++
	s.arrivals[gen]++
	c.fences[m.ID] = gen
	s.fenceW[gen] = append(s.fenceW[gen], waiter{c, m.ID})
	for s.arrivals[s.done] == s.cfg.Size {
		g := s.done
		for _, w := range s.fenceW[g] {
			delete(w.c.fences, w.id)
			s.replyLocked(w.c, w.id, nil)
		}
		delete(s.fenceW, g)
		delete(s.arrivals, g)
		s.done++
	}
}

// cancel forgets pending request id of c. A cancelled fence still counts as
// the rank's arrival at its generation.
func (s *Server) cancel(c *sconn, id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key, ok := c.gets[id]; ok {
		delete(c.gets, id)
		s.getWait[key] = removeWaiter(s.getWait[key], c, id)
		if len(s.getWait[key]) == 0 {
			delete(s.getWait, key)
		}
	}
	if gen, ok := c.fences[id]; ok {
		delete(c.fences, id)
		s.fenceW[gen] = removeWaiter(s.fenceW[gen], c, id)
	}
}

// removeWaiter removes the waiters of c (with the given id, or all of c's if
// id is 0) from ws.
func removeWaiter(ws []waiter, c *sconn, id uint64) []waiter {
	out := ws[:0]
	for _, w := range ws {
		if w.c != c || (id != 0 && w.id != id) {
			out = append(out, w)
		}
	}
	clear(ws[len(out):])
	return out
}

// drop unregisters c, forgets its pending requests and closes it.
func (s *Server) drop(c *sconn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.rank >= 0 && s.ranks[c.rank] == c {
		s.ranks[c.rank] = nil
	}
	for id, key := range c.gets {
		delete(c.gets, id)
		if ws := removeWaiter(s.getWait[key], c, 0); len(ws) > 0 {
			s.getWait[key] = ws
		} else {
			delete(s.getWait, key)
		}
	}
	for id, gen := range c.fences {
		delete(c.fences, id)
		s.fenceW[gen] = removeWaiter(s.fenceW[gen], c, 0)
	}
	s.mu.Unlock()
	c.kill()
}

// enqueue queues frame f for the writer of c. If c is too far behind, it is
// killed instead (its reader then drops it). Called with s.mu held.
func (c *sconn) enqueue(s *Server, f []byte) {
	c.omu.Lock()
	defer c.omu.Unlock()
	if c.dead {
		return
	}
	if len(c.out) >= maxOutFrames || c.outBytes+len(f) > maxOutBytes {
		s.log.Warn("rendezvous: client not reading; dropping its connection", "rank", c.rank, "remote", c.addr,
			"queued_frames", len(c.out), "queued_bytes", c.outBytes)
		c.killLocked()
		return
	}
	c.out = append(c.out, f)
	c.outBytes += len(f)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *sconn) kill() {
	c.omu.Lock()
	c.killLocked()
	c.omu.Unlock()
}

func (c *sconn) killLocked() {
	if !c.dead {
		c.dead = true
		c.out, c.outBytes = nil, 0
		close(c.gone)
		_ = c.nc.Close()
	}
}

// writeLoop writes the frames queued to c, in order, until c is killed.
func (s *Server) writeLoop(c *sconn) {
	defer s.wg.Done()
	for {
		select {
		case <-c.gone:
			return
		case <-c.wake:
		}
		c.omu.Lock()
		bufs := net.Buffers(c.out)
		c.out, c.outBytes = nil, 0
		c.omu.Unlock()
		if len(bufs) == 0 {
			continue
		}
		err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err == nil {
			_, err = bufs.WriteTo(c.nc)
		}
		if err != nil {
			select {
			case <-c.gone: // killed meanwhile: not worth a log line
			default:
				s.log.Warn("rendezvous: write to rank failed", "rank", c.rankForLog(s), "remote", c.addr, "err", err)
			}
			c.kill()
			return
		}
	}
}

func (c *sconn) rankForLog(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.rank
}
