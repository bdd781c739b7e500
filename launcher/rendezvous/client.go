package rendezvous

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gorun-hpc/gorun/runtime/auth"
)

// ClientConfig configures [Dial].
type ClientConfig struct {
	// Addr is the server's host:port.
	Addr string
	// Token is the job secret.
	Token []byte
	// Rank is this process's rank in [0, Size).
	Rank int
	// OnEvent, if set, is called from the client's reader goroutine, in
	// order, for every event the server pushes, and once with EventLost if
	// the connection breaks (never after Close has been called). It must not
	// block long, since replies to requests wait behind it, and must not
	// call Close (which waits for the reader goroutine); start a goroutine
	// for that. It may call the other methods of the Client only from
	// another goroutine, for the same reason.
	OnEvent func(Event)
}

// Client is a rank's connection to the rendezvous server. Its methods are
// safe for concurrent use; any number of requests may be outstanding.
type Client struct {
	nc      net.Conn
	rank    int
	size    int
	onEvent func(Event)
	wlock   chan struct{} // 1-slot semaphore: one frame written at a time
	done    chan struct{} // closed when the reader goroutine has exited
	once    sync.Once

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan result
	err     error // set once the connection is unusable: ErrClosed or wraps ErrLost
	closing bool
}

type result struct {
	m   msg
	err error
}

// Dial connects to the server at cfg.Addr, proves cfg.Token and claims
// cfg.Rank. ctx bounds the whole handshake (which is also bounded to 10 s
// when ctx has no earlier deadline); it does not affect the returned
// Client. The error wraps ErrRejected if the server refused us: also
// auth.ErrRejected for a wrong token, ErrBadRank for a rank outside the job
// and ErrRankTaken for a rank that is already connected.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if len(cfg.Token) == 0 {
		return nil, fmt.Errorf("rendezvous: dial %s: empty job token", cfg.Addr)
	}
	if !fitsInt32(int64(cfg.Rank)) {
		return nil, fmt.Errorf("rendezvous: dial %s: rank %d: %w", cfg.Addr, cfg.Rank, ErrBadRank)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: rank %d: dial %s: %w", cfg.Rank, cfg.Addr, err)
	}
	deadline := time.Now().Add(defaultHelloTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	// Cancelling ctx interrupts the handshake's blocking reads and writes.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReader(nc)
	size, err := clientHandshake(nc, br, cfg, deadline)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("rendezvous: rank %d: handshake with %s: %w", cfg.Rank, cfg.Addr, err)
	}
	c := &Client{
		nc:      nc,
		rank:    cfg.Rank,
		size:    size,
		onEvent: cfg.OnEvent,
		wlock:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: make(map[uint64]chan result),
	}
	go c.readLoop(br) // owner: c; exits when the connection fails or Close closes it; joined by Close
	return c, nil
}

func clientHandshake(nc net.Conn, br *bufio.Reader, cfg ClientConfig, deadline time.Time) (int, error) {
	if err := nc.SetDeadline(deadline); err != nil {
		return 0, err
	}
	if err := auth.Client(nc, cfg.Token, AuthLabel); err != nil {
		if errors.Is(err, auth.ErrRejected) {
			return 0, fmt.Errorf("%w: %w", ErrRejected, err)
		}
		return 0, err
	}
	hello, err := encodeFrame(&msg{Op: opHello, Rank: cfg.Rank})
	if err != nil {
		return 0, err
	}
	if _, err := nc.Write(hello); err != nil {
		return 0, fmt.Errorf("send hello: %w", err)
	}
	m, err := readFrame(br)
	if err != nil {
		return 0, fmt.Errorf("read welcome: %w", err)
	}
	switch m.Op {
	case opWelcome:
		if m.Code < 1 || cfg.Rank < 0 || cfg.Rank >= m.Code {
			return 0, fmt.Errorf("%w: welcome with job size %d for rank %d", errFrame, m.Code, cfg.Rank)
		}
	case opReject:
		var why error
		switch m.Code {
		case rejectBadRank:
			why = ErrBadRank
		case rejectRankTaken:
			why = ErrRankTaken
		default:
			why = ErrRejected
		}
		return 0, fmt.Errorf("%w (server says: %s)", why, m.Text)
	default:
		return 0, fmt.Errorf("%w: expected welcome, got op %d", errFrame, m.Op)
	}
	return m.Code, nc.SetDeadline(time.Time{})
}

// Rank returns the rank this client claimed.
func (c *Client) Rank() int { return c.rank }

// Size returns the number of ranks in the job, as told by the server.
func (c *Client) Size() int { return c.size }

// readLoop delivers replies and events until the connection fails.
func (c *Client) readLoop(br *bufio.Reader) {
	defer close(c.done)
	var err error
	for err == nil {
		var m msg
		m, err = readFrame(br)
		if err != nil {
			break
		}
		switch m.Op {
		case opReply:
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil { // nil: the caller gave up (ctx) and forgot it
				ch <- result{m: m}
			}
		case opEvent:
			if c.onEvent != nil {
				c.onEvent(Event{Kind: EventKind(m.Kind), Rank: m.Rank, Code: m.Code, Text: m.Text})
			}
		default:
			err = fmt.Errorf("%w: unexpected op %d from the server", errFrame, m.Op)
		}
	}
	_ = c.nc.Close()
	c.mu.Lock()
	closing := c.closing
	if c.err == nil {
		c.err = fmt.Errorf("%w: %w", ErrLost, err)
	}
	cerr := c.err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, ch := range pending {
		ch <- result{err: cerr}
	}
	if !closing && c.onEvent != nil {
		c.onEvent(Event{Kind: EventLost, Rank: -1, Text: truncateText(cerr.Error())})
	}
}

// Close closes the connection and waits for the reader goroutine.
// Outstanding and later requests fail with ErrClosed. Idempotent; returns
// nil. Must not be called from OnEvent.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closing = true
		if c.err == nil {
			c.err = ErrClosed
		}
		c.mu.Unlock()
		_ = c.nc.Close()
	})
	<-c.done
	return nil
}

// call sends request m with a fresh id and waits for its reply. If ctx ends
// first and cancellable is set, the server is told to forget the request.
func (c *Client) call(ctx context.Context, m msg, cancellable bool) (msg, error) {
	if err := ctx.Err(); err != nil {
		return msg{}, err
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return msg{}, err
	}
	c.nextID++
	m.ID = c.nextID
	c.pending[m.ID] = ch
	c.mu.Unlock()

	f, err := encodeFrame(&m)
	if err == nil {
		err = c.send(ctx, f)
	}
	if err != nil {
		c.forget(m.ID)
		return msg{}, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return msg{}, r.err
		}
		if r.m.Code != replyOK {
			return msg{}, fmt.Errorf("%w: %s", ErrRefused, r.m.Text)
		}
		return r.m, nil
	case <-ctx.Done():
		if c.forget(m.ID) && cancellable {
			if f, err := encodeFrame(&msg{Op: opCancel, ID: m.ID}); err == nil {
				_ = c.send(context.Background(), f) // best effort; bounded by writeTimeout
			}
		}
		return msg{}, ctx.Err()
	}
}

// forget removes pending request id and reports whether it was still pending.
func (c *Client) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

// send writes one frame. A failed write leaves a partial frame on the wire,
// so it closes the connection (the reader then reports EventLost).
func (c *Client) send(ctx context.Context, f []byte) error {
	select {
	case c.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.wlock }()
	err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err == nil {
		_, err = c.nc.Write(f)
	}
	if err == nil {
		return nil
	}
	_ = c.nc.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return fmt.Errorf("%w: %w", ErrLost, err)
}

// Set stores value under key (PMI put), replacing any earlier value, and
// returns once the server has stored it. value is copied before Set
// returns. key must be 1..MaxKeyLen bytes and value at most MaxValueLen.
func (c *Client) Set(ctx context.Context, key string, value []byte) error {
	if err := checkKV(key, value); err != nil {
		return fmt.Errorf("rendezvous: set %q: %w", key, err)
	}
	if value == nil {
		value = []byte{}
	}
	if _, err := c.call(ctx, msg{Op: opSet, Key: key, Value: value}, false); err != nil {
		return fmt.Errorf("rendezvous: set %q: %w", key, err)
	}
	return nil
}

// Get returns the value of key, waiting until some rank sets it or ctx
// ends. The returned slice is newly allocated and owned by the caller; it is
// never nil on success.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKV(key, nil); err != nil {
		return nil, fmt.Errorf("rendezvous: get %q: %w", key, err)
	}
	r, err := c.call(ctx, msg{Op: opGet, Key: key}, true)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: get %q: %w", key, err)
	}
	if r.Value == nil {
		r.Value = []byte{}
	}
	return r.Value, nil
}

// Fence returns once every rank of the job has called Fence as many times as
// this rank has (including this call): the n-th Fence of each rank forms
// generation n. Sets made before a Fence are visible to Gets made after it
// on every rank. A Fence abandoned because ctx ended still counts as this
// rank's arrival at its generation; after such an error the job should be
// aborted.
func (c *Client) Fence(ctx context.Context) error {
	if _, err := c.call(ctx, msg{Op: opFence}, true); err != nil {
		return fmt.Errorf("rendezvous: fence: %w", err)
	}
	return nil
}

// Abort asks the launcher to end the job with exit code code; msg (truncated
// to MaxTextLen bytes) says why. It returns once the launcher has been told;
// the launcher then notifies the ranks (EventAbort) and stops them.
func (c *Client) Abort(ctx context.Context, code int, msg string) error {
	if _, err := c.call(ctx, abortMsg(code, msg), false); err != nil {
		return fmt.Errorf("rendezvous: abort: %w", err)
	}
	return nil
}

func abortMsg(code int, text string) msg {
	return msg{Op: opAbort, Code: clampInt32(code), Text: truncateText(text)}
}

// ReportLost tells the launcher that this rank lost its connection to peer.
// It returns once the launcher has recorded the report, so a rank that
// reports before acting on the loss (failing, exiting) is never blamed for
// the failure it observed.
func (c *Client) ReportLost(ctx context.Context, peer int) error {
	if _, err := c.call(ctx, msg{Op: opLost, Code: peer}, false); err != nil {
		return fmt.Errorf("rendezvous: report lost rank %d: %w", peer, err)
	}
	return nil
}

// Finalize reports that this rank finalized cleanly, and returns once the
// launcher has been told. The connection stays open until Close.
func (c *Client) Finalize(ctx context.Context) error {
	if _, err := c.call(ctx, msg{Op: opFinalize}, false); err != nil {
		return fmt.Errorf("rendezvous: finalize: %w", err)
	}
	return nil
}
