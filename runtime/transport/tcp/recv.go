package tcp

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// nap is how long the reader of a connection sleeps, instead of waiting for
// the socket to become readable, while goroutines keep polling the
// endpoint. A variable so that tests can change it.
var nap = 100 * time.Microsecond

// errBye ends a connection whose peer sent its Bye: an orderly end.
var errBye = errors.New("bye")

// conn is an established connection with one peer rank, dialed by either
// side, or the record of a dial that failed (s nil, err set). It carries
// frames both ways: this endpoint's frames to the peer if it is the
// connection Send chose for that rank (Endpoint.out), and the peer's frames
// if the peer chose it.
//
// Writing: Send writes whole frames under wmu.
//
// Reading: its socket is non-blocking (as every socket of package net). The
// bytes are read, with plain read system calls, by whoever holds mu: the
// connection's reader goroutine or a goroutine in Poll. Both run the same
// resumable frame parser, so a frame begun by one can be finished by the
// other, and since they hold mu the Sink's calls for the peer are
// sequential and in stream order.
type conn struct {
	e      *Endpoint
	rank   int
	addr   string
	s      *sock
	dialed bool // this endpoint dialed it (for error messages)

	// peerErr is set by the reader when the peer's stream ended: the peer
	// closed (its Bye) or vanished. Sends then fail with it.
	peerErr atomic.Pointer[peerError]
	// failed is set by FailPeer: the connection takes no more frames.
	failed atomic.Pointer[peerError]

	wmu  sync.Mutex // serialises frames written on the connection
	err  error      // guarded by wmu: once set, the connection takes no frames
	whdr [transport.HeaderSize]byte

	// polled is set by Poll and cleared by the reader, which thereby sees
	// whether anybody polled since it last looked.
	polled atomic.Bool
	// ended is set with end, for the reader: pollers leave an ended
	// stream alone, so the reader must stop napping and finish it.
	ended atomic.Bool

	mu sync.Mutex // held while reading the socket and calling the Sink
	// Guarded by mu:
	dead    bool             // the socket is closed or about to be: nobody may read it
	end     error            // why the stream ended (errBye for a Bye); nil while it goes on
	frames  bool             // a data or ack frame came on it: the peer sends on it
	buf     []byte           // read buffer; buf[r:w] is read but not parsed yet
	r, w    int              //
	inFrame bool             // hdr is parsed and its payload is being read
	hdr     transport.Header // the frame whose payload is being read
	dst     []byte           // where its payload goes: the Sink's buffer
	drop    bool             // the payload is read and dropped (the endpoint closes)
	got     int              // payload bytes of hdr read so far
	took    bool             // a read since Poll cleared it returned bytes
}

func newConn(e *Endpoint, s *sock, rank int, addr string, dialed bool) *conn {
	return &conn{e: e, s: s, rank: rank, addr: addr, dialed: dialed, buf: make([]byte, readBufferSize)}
}

// Poll hands the frames that have arrived on the connections to the
// Sink, from the calling goroutine, and reports whether it handed any, or
// took in bytes of a frame still arriving (a large payload streams in over
// many calls: its receiver keeps polling while it does). It
// never blocks: a connection that another goroutine is reading is skipped.
// It asks the kernel which sockets are readable, with one ppoll system
// call per pollChunk connections, and reads only those. It is safe for
// concurrent use, also during and after Close (after Close it does
// nothing).
//
// Why ppoll before reading: a read of an empty socket takes the socket's
// lock, and the kernel, delivering a segment meanwhile, finds the socket
// owned, queues the segment on its backlog and leaves it for the reader's
// next call; ppoll looks at the socket without the lock. A raw spinning
// ping-pong on loopback took 4.2 µs a half round trip with bare reads and
// 4.0 µs with poll first; and a rank with many peers makes one system call
// a round instead of one per peer.
func (e *Endpoint) Poll() bool {
	p := e.polling.Load()
	if p == nil {
		return false
	}
	progress := false
	var fds [pollChunk]unix.PollFd
	for cs := *p; len(cs) > 0; {
		n := min(len(cs), pollChunk)
		for i, c := range cs[:n] {
			if !c.polled.Load() {
				c.polled.Store(true)
			}
			// The descriptor may be closed meanwhile, and its number
			// reused: polling it is harmless, and drain is only entered
			// under the lock, after a check of c.dead.
			fds[i] = unix.PollFd{Fd: int32(c.s.fd), Events: unix.POLLIN | pollRdHup}
		}
		ready := pollNow(fds[:n])
		for i, c := range cs[:n] {
			if ready >= 0 && fds[i].Revents == 0 {
				continue
			}
			if !c.mu.TryLock() {
				continue
			}
			if !c.dead && c.end == nil {
				c.took = false
				if c.drain(true) || c.took {
					progress = true
				}
			}
			c.mu.Unlock()
		}
		cs = cs[n:]
	}
	return progress
}

// pollChunk is how many connections Poll asks about in one system call;
// their poll records live on its stack.
const pollChunk = 16

// setPolling publishes the established connections for Poll. Called with
// e.mu held whenever e.conns changes.
func (e *Endpoint) setPolling() {
	p := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		p = append(p, c)
	}
	e.polling.Store(&p)
}

// read reads from the socket into b, without blocking (see sock.read).
func (c *conn) read(b []byte) (n int, done bool, err error) {
	n, done, err = c.s.read(b)
	if n > 0 {
		c.took = true
	}
	return n, done, err
}

// drain reads and hands on frames until the socket has no more bytes (or
// the stream ends: c.end is then set). It reports whether it delivered any
// frame. Called with c.mu held, c.dead false and c.end nil. On return,
// c.buf holds at most an incomplete frame and the socket had no more data
// when it last looked, so whoever waits for readability next misses nothing.
//
// With once (Poll), a read that came back short counts as that look: drain
// hands on what it read and returns without another read, which would
// almost always say EAGAIN and, in a ping-pong, sit between the frame's
// arrival and the reply (a read of an empty socket costs about as much as
// one that finds data). Whatever arrived meanwhile is reported by Poll's
// next ppoll, which is level-triggered. The reader, whose wait is
// edge-triggered, drains to EAGAIN.
func (c *conn) drain(once bool) bool {
	e := c.e
	delivered := false
	empty := false // a read came back short: the socket is most likely empty
	for {
		if c.inFrame {
			need := int(c.hdr.Len) - c.got
			if avail := c.w - c.r; avail > 0 && need > 0 {
				n := min(avail, need)
				if !c.drop {
					copy(c.dst[c.got:], c.buf[c.r:c.r+n])
				}
				c.r += n
				c.got += n
				need -= n
			}
			if need > 0 {
				if c.r == c.w {
					c.r, c.w = 0, 0
				}
				// Large remainders go straight into the Sink's buffer; small
				// ones through c.buf, which may bring in the next frames too.
				if !c.drop && need >= len(c.buf) {
					if empty {
						return delivered
					}
					n, done, err := c.read(c.dst[c.got:])
					if done {
						c.stop(err)
						return delivered
					}
					if n == 0 {
						return delivered
					}
					empty = once && n < min(len(c.dst)-c.got, rawIOMax)
					c.got += n
				} else {
					if empty {
						return delivered
					}
					n, done, err := c.read(c.buf[c.w:])
					if done {
						c.stop(err)
						return delivered
					}
					if n == 0 {
						return delivered
					}
					empty = once && n < len(c.buf)-c.w
					c.w += n
				}
				continue
			}
			c.inFrame = false
			if !c.drop {
				dst := c.dst
				c.dst = nil
				e.sink.Deliver(c.hdr, dst)
				delivered = true
			}
			continue
		}
		if c.w-c.r < transport.HeaderSize {
			if c.r > 0 {
				c.w = copy(c.buf, c.buf[c.r:c.w])
				c.r = 0
			}
			if empty {
				return delivered
			}
			n, done, err := c.read(c.buf[c.w:])
			if done {
				c.stop(err)
				return delivered
			}
			if n == 0 {
				return delivered
			}
			empty = once && n < len(c.buf)-c.w
			c.w += n
			continue
		}
		h, err := transport.ParseHeader(c.buf[c.r : c.r+transport.HeaderSize])
		if err == nil && (int(h.Src) != c.rank || int(h.Dst) != e.rank) {
			err = fmt.Errorf("%w: frame from rank %d to rank %d", transport.ErrBadHeader, h.Src, h.Dst)
		}
		if err != nil {
			c.stop(err) // an authenticated peer broke the protocol
			return delivered
		}
		c.r += transport.HeaderSize
		// While the endpoint closes, frames are read and dropped until the
		// peer closes its side.
		closing := e.closed.Load()
		switch h.Kind {
		case transport.KindData:
			c.frames = true
			if fs, ok := e.sink.(transport.FrameSink); ok && !closing && c.w-c.r >= int(h.Len) {
				// The whole payload is in the read buffer: hand the frame
				// over in one call.
				fs.DeliverFrame(h, c.buf[c.r:c.r+int(h.Len):c.r+int(h.Len)])
				c.r += int(h.Len)
				delivered = true
				continue
			}
			c.hdr, c.got, c.inFrame, c.dst, c.drop = h, 0, true, nil, closing
			if h.Len >= quickAckMin {
				c.s.quickAck()
			}
			if !closing {
				buf := e.sink.Buffer(h)
				if len(buf) != int(h.Len) {
					c.inFrame = false
					c.stop(fmt.Errorf("sink returned a %d-byte buffer for a %d-byte frame", len(buf), h.Len))
					return delivered
				}
				c.dst = buf
			}
		case transport.KindAck:
			c.frames = true
			if !closing {
				e.sink.Deliver(h, nil)
				delivered = true
			}
		case transport.KindBye:
			e.markGone(c.rank)
			// The Bye ends the peer's frames to us only on the connection
			// that carried them; on another one it just says the peer is
			// going.
			if !closing && c.frames {
				e.sink.Deliver(h, nil)
				delivered = true
			}
			c.stop(errBye)
			return delivered
		}
	}
}

// stop records why the stream ended. Called with c.mu held.
func (c *conn) stop(err error) {
	c.end = err
	c.ended.Store(true)
}

// run is the connection's reader. It reads whatever Poll leaves (everything
// when nobody polls) and ends when the stream does: at the peer's Bye, at
// the end of the connection, on a broken frame, or at the deadline Close
// sets. While nobody polls it waits for the socket to become readable (in
// the runtime's network poller, registered for that wait only: see sock);
// while somebody does (Poll marks the connection) it naps instead, so the
// pollers' reads are not each followed by a wake-up of this goroutine.
func (c *conn) run() {
	e := c.e
	for {
		c.mu.Lock()
		if c.end == nil {
			c.drain(false)
		}
		ended := c.end != nil
		c.mu.Unlock()
		if ended {
			return
		}
		if !c.ended.Load() && !e.closed.Load() && c.polled.Swap(false) {
			// Somebody polls: leave the reading to them, and nap until a
			// nap passes without a Poll; then drain and wait again.
			for {
				time.Sleep(nap)
				if c.ended.Load() || e.closed.Load() || !c.polled.Swap(false) {
					break
				}
			}
			continue
		}
		// The socket was drained to EAGAIN above: whatever arrives from now
		// on makes it readable, so no frame is missed.
		if err := c.s.wait(false); err != nil {
			// The deadline of Close passed (the peer did not close its
			// side), or the wait failed.
			c.mu.Lock()
			if c.end == nil {
				c.stop(err)
			}
			c.mu.Unlock()
			return
		}
	}
}

// finish stops all reading of the connection, makes Sends on it fail from
// now on, and hands its end to the endpoint (see Endpoint.ended): nothing
// more for a Bye, a lost peer otherwise. The socket is closed afterwards,
// by the reader's goroutine; nobody reads it any more.
func (c *conn) finish() {
	c.mu.Lock()
	c.dead = true
	end := c.end
	c.dst = nil
	c.mu.Unlock()
	var perr *peerError
	if end == errBye {
		perr = &peerError{op: "send to", rank: c.rank, addr: c.addr, err: errPeerClosed}
	} else {
		if errors.Is(end, io.EOF) {
			end = errNoBye
		}
		op := "connection from"
		if c.dialed {
			op = "connection to"
		}
		perr = &peerError{op: op, rank: c.rank, addr: c.addr, err: end}
	}
	c.peerErr.CompareAndSwap(nil, perr)
	// A Send blocked on the peer fails now; a peer that is closing sees
	// the end it waits for.
	c.s.shutdown(unix.SHUT_RDWR)
	c.e.ended(c, perr, end == errBye)
}

// bye ends the connection in order during Close: it writes KindBye (unless
// the stream is broken or the peer already went), half-closes, and leaves
// the reader to wait, until deadline, for the peer to close its side. Until
// then the reader drops what the peer still sends.
func (c *conn) bye(deadline time.Time) {
	c.s.setWriteDeadline(deadline) // unblocks a Send stuck on a stalled peer
	c.wmu.Lock()
	if c.err == nil && c.peerErr.Load() == nil {
		h := transport.Header{Kind: transport.KindBye, Src: int32(c.e.rank), Dst: int32(c.rank)}
		h.Put(c.whdr[:])
		if err := c.s.write(c.whdr[:], nil); err == nil {
			c.s.shutdown(unix.SHUT_WR)
		}
	}
	c.err = c.e.errClosed()
	c.wmu.Unlock()
	c.s.setReadDeadline(deadline)
}
