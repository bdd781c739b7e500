package mpi

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gorun-hpc/gorun/runtime/internal/match"
	"github.com/gorun-hpc/gorun/runtime/transport"
)

// request is one pending receive, probe or synchronous send. It completes
// exactly once: complete sets status and err, marks state and puts one token
// in done. Blocking calls take requests from a free list and return them once
// the outcome is read; the engine drops every reference before completing.
type request struct {
	comm    *Comm
	op      string
	peer    int // as the user gave it (communicator rank or wildcard), for errors
	tag     int
	pattern match.Envelope // receive and probe pattern, world ranks

	buf   []byte // typed receive: destination memory
	typ   uint8  // typed receive: expected element type code
	value bool   // value receive: take a payload of any length into data
	probe bool   // probe: complete on arrival without consuming
	data  []byte // value receive: the payload, owned by the request

	dst int32 // synchronous send: destination world rank

	state    atomic.Uint32 // statePending, stateParked or stateDone
	done     chan struct{} // capacity 1: the token complete sends a parked waiter
	selected bool          // Request.doneCh handed out done: a token may still come
	status   Status
	err      error
}

// requestCache is a world's free list of requests, and of the Requests
// that Irecv returns. It is a plain capped stack rather than a sync.Pool: a
// sync.Pool is emptied by every garbage collection, and a program that
// allocates then pays for a fresh request and channel on most calls. One
// per world (in its engine), so that the worlds of an in-process job
// (package mpitest) do not contend. free and slab are guarded by the
// engine's mu: Irecv takes its request and posts it in one critical
// section.
type requestCache struct {
	free []*request

	// slab holds the unused rest of a block of Requests, which Irecv hands
	// out one by one: one allocation per requestSlab Irecvs instead of one
	// each. A Request is never reused (the caller may keep it), so a block
	// lives as long as any of its Requests is reachable: at most
	// requestSlab·64 bytes for one kept Request.
	slab []Request

	// hot holds the request of the last blocking receive (see stash), not
	// yet cleared: the next newRequest takes and clears it, so that the
	// clearing happens before a receive starts waiting rather than between
	// its completion and the caller's next send. It keeps that receive's
	// buffer reachable until then.
	hot atomic.Pointer[request]
}

// maxFreeRequests caps a world's free list.
const maxFreeRequests = 4096

// requestSlab is how many Requests Irecv allocates at a time: 31 of 64
// bytes and the 8-byte header Go puts in front of a block with pointers
// fill the 2 KiB size class.
const requestSlab = 31

// newRequest returns a request ready for one operation.
func newRequest(c *Comm, op string, peer, tag int) *request {
	e := c.w.eng
	var r *request
	if e.requests.hot.Load() != nil { // a load first: swapping an empty slot is an atomic write for nothing
		r = e.requests.hot.Swap(nil)
	}
	if r != nil {
		r.clear()
	} else {
		e.mu.Lock()
		r = e.takeRequestLocked()
		e.mu.Unlock()
	}
	r.comm, r.op, r.peer, r.tag = c, op, peer, tag
	return r
}

// takeRequestLocked pops a cleared request off the free list, or makes
// one. e.mu must be held.
func (e *engine) takeRequestLocked() *request {
	rc := &e.requests
	if n := len(rc.free); n > 0 {
		r := rc.free[n-1]
		rc.free[n-1] = nil
		rc.free = rc.free[:n-1]
		return r
	}
	return &request{done: make(chan struct{}, 1)}
}

// newPublicLocked returns a zero Request from the slab. e.mu must be held.
func (e *engine) newPublicLocked() *Request {
	rc := &e.requests
	if len(rc.slab) == 0 {
		rc.slab = make([]Request, requestSlab)
	}
	q := &rc.slab[0]
	rc.slab = rc.slab[1:]
	return q
}

// clear readies a completed request for reuse: it drops an unconsumed
// token and every field but the channel.
func (r *request) clear() {
	done := r.done
	if len(done) > 0 {
		<-done
	}
	*r = request{done: done}
}

// release returns a completed request to its world's free list. Only the
// goroutine that owns a blocking call's request may call it, after reading
// the outcome.
func (r *request) release() {
	r.comm.w.eng.putRequests([]*request{r})
}

// putRequests clears completed requests and returns them to the free list,
// under one lock; it keeps no reference to rs.
func (e *engine) putRequests(rs []*request) {
	for _, r := range rs {
		r.clear()
	}
	e.mu.Lock()
	for _, r := range rs {
		if len(e.requests.free) < maxFreeRequests {
			e.requests.free = append(e.requests.free, r)
		}
	}
	e.mu.Unlock()
}

// releaser returns completed requests to their worlds' free lists a batch
// at a time, taking each list's lock once per batch rather than once per
// request: WaitAll over a window of 64 Irecvs. Its zero value is ready.
type releaser struct {
	n     int
	batch [64]*request
}

// add queues r (nil: nothing) for release; the same rules as release.
func (b *releaser) add(r *request) {
	if r == nil {
		return
	}
	if b.n == len(b.batch) || (b.n > 0 && b.batch[0].comm.w != r.comm.w) {
		b.flush()
	}
	b.batch[b.n] = r
	b.n++
}

// flush releases what add queued.
func (b *releaser) flush() {
	if b.n == 0 {
		return
	}
	b.batch[0].comm.w.eng.putRequests(b.batch[:b.n])
	clear(b.batch[:b.n])
	b.n = 0
}

// stash is release for the receive path: it parks r, uncleared, in the
// world's hot slot (the next newRequest clears it), and releases whatever
// was there. Same rules as release.
func (r *request) stash() {
	if old := r.comm.w.eng.requests.hot.Swap(r); old != nil {
		old.release()
	}
}

// Request states. A waiter that spins watches for stateDone and needs no
// token; one that blocks moves pending → parked first and then receives the
// token complete sends. complete swaps in stateDone and touches r again only
// when it swapped out stateParked: that waiter is blocked until the token
// arrives, so r cannot have been released (and reused) meanwhile.
const (
	statePending uint32 = iota
	stateParked
	stateDone
)

// complete records err (nil: success, with r.status already set) and
// wakes the waiter. The engine calls it with engine.mu held, after dropping
// its own references to r.
func (r *request) complete(err error) {
	if err != nil {
		r.err = r.comm.errorf(r.op, r.peer, r.tag, err)
	}
	if r.state.Swap(stateDone) == stateParked {
		r.done <- struct{}{}
	}
}

// completeStatus completes r with status st and err.
func (r *request) completeStatus(st Status, err error) {
	r.status = st
	r.complete(err)
}

// fail completes r with err and an empty status.
func (r *request) fail(err error) {
	r.status = Status{}
	r.complete(err)
}

func (r *request) isDone() bool { return r.state.Load() == stateDone }

// park blocks until r is complete. r may already be parked by a select
// that gave up (Request.WaitContext); its token is still to come then.
func (r *request) park() {
	if r.state.CompareAndSwap(statePending, stateParked) || r.state.Load() == stateParked {
		<-r.done
	}
}

// message is an unexpected message: its header arrived before a matching
// receive was posted. Its payload may still be streaming in.
type message struct {
	h        transport.Header
	data     []byte   // the payload; aliases buf when buf was large enough
	buf      []byte   // reusable payload memory kept across uses
	big      *bigBuf  // data's pooled memory, for payloads above maxKeptPayload
	complete bool     // payload fully delivered
	err      error    // the sender was lost before the payload completed
	waiter   *request // receive that matched before the payload completed
	discard  bool     // matched by a receive that failed; drop on delivery
}

// slot is the frame currently streaming in from one source.
type slot struct {
	req *request // payload lands in a posted receive
	msg *message // payload lands in an unexpected message
}

// engine matches inbound frames to receives. It implements transport.Sink
// for every transport of its world. All state is guarded by mu; mu is never
// held while calling a transport.
type engine struct {
	w *world

	mu       sync.Mutex // guards the fields below, and requests' free and slab
	requests requestCache
	q        match.Queue[*request, *message]
	inflight []slot  // by source world rank
	lost     []error // by world rank: why that peer is gone
	anyLost  error   // first lost peer's error, fails wildcard receives
	aborted  error
	syncs    map[uint64]*request // synchronous sends awaiting their ack
	nextSeq  uint64
	probes   []*request
	free     []*message // recycled unexpected-message records

	acks sync.WaitGroup // goroutines sending acks; joined by Finalize

	// trouble is set (under mu) once a peer is lost or the job aborts;
	// until then plain sends skip mu entirely.
	trouble atomic.Bool

	// quiet mirrors, for Quiet, whether q and probes are empty; unlock
	// updates it (and quietSet, its copy under mu) as mu is released.
	quiet    atomic.Bool
	quietSet bool
}

func newEngine(w *world, size int) *engine {
	e := &engine{
		w:        w,
		inflight: make([]slot, size),
		lost:     make([]error, size),
		syncs:    make(map[uint64]*request),
		quietSet: true,
	}
	e.quiet.Store(true)
	return e
}

// unlock releases mu, first bringing quiet up to date. Every method that
// may change q or probes unlocks with it.
func (e *engine) unlock() {
	posted, unexp := e.q.Len()
	if q := posted == 0 && unexp == 0 && len(e.probes) == 0; q != e.quietSet {
		e.quietSet = q
		e.quiet.Store(q)
	}
	e.mu.Unlock()
}

// Quiet implements transport.QuietSink: with no receive posted, no probe
// waiting and no unexpected message held, the next data frame from any
// source would be stored as unexpected, so a transport may hand it instead
// straight to a blocking receive that waits for exactly it (recvDirect)
// without changing the order of matching. The transport asks while it
// holds its delivery lock, so none of its own deliveries races with the
// answer; a receive posted by another goroutine meanwhile is concurrent
// with that blocking receive, and either may match first.
func (e *engine) Quiet() bool { return e.quiet.Load() }

func envelopeMatches(p, env match.Envelope) bool {
	return p.Context == env.Context &&
		(p.Source == match.Any || p.Source == env.Source) &&
		(p.Tag == match.Any || p.Tag == env.Tag)
}

// statusOf builds the status of h as seen from communicator c.
func statusOf(c *Comm, h *transport.Header) Status {
	var st Status
	st.fill(c, h)
	return st
}

// fill sets s to the status of h as seen from communicator c, in place:
// the small-message path writes a request's status this way rather than
// copying one in.
func (s *Status) fill(c *Comm, h *transport.Header) {
	s.Source = c.fromWorld(int(h.Src))
	s.Tag = int(h.Tag)
	s.Count = int(h.Len >> codeShift[h.Type])
	if h.Type == typeValue {
		s.Count = 1
	}
	s.bytes, s.typ = int(h.Len), h.Type
}

// completeWith completes r with the status of the message h that landed in
// it.
func (r *request) completeWith(h *transport.Header) {
	r.status.fill(r.comm, h)
	r.complete(nil)
}

// check reports why a message with header h cannot land in r, or nil.
func (r *request) check(h *transport.Header) error {
	if !r.value && h.Type == r.typ && int(h.Len) <= len(r.buf) {
		return nil // the common case, in one test
	}
	return r.mismatch(h)
}

// mismatch is check's slow path: the reason, if any.
func (r *request) mismatch(h *transport.Header) error {
	if r.value {
		if h.Type != typeValue {
			return fmt.Errorf("%w: message holds %s elements, receive expects a Go value (use Recv)", ErrType, typeName(h.Type))
		}
		return nil
	}
	if h.Type != r.typ {
		return fmt.Errorf("%w: message holds %s, receive buffer is []%s", ErrType, typeName(h.Type), typeName(r.typ))
	}
	if int(h.Len) > len(r.buf) {
		sz := sizeOfCode(h.Type)
		return fmt.Errorf("%w: message has %d elements (%d bytes), buffer holds %d",
			ErrTruncate, int(h.Len)/sz, h.Len, len(r.buf)/sz)
	}
	return nil
}

// Buffer implements transport.Sink.
func (e *engine) Buffer(h transport.Header) []byte {
	e.mu.Lock()
	defer e.unlock()
	env := match.Envelope{Context: h.Context, Source: h.Src, Tag: h.Tag}
	if r, ok := e.q.Match(env); ok {
		dst, ok := e.accept(r, &h)
		if !ok {
			return make([]byte, h.Len) // drained and dropped
		}
		e.inflight[h.Src] = slot{req: r}
		return dst
	}
	msg := e.unexpected(env, h)
	e.inflight[h.Src] = slot{msg: msg}
	return msg.data
}

// unexpected stores a message with header h, for which no receive is
// posted, and returns it with room for its payload in msg.data. e.mu is
// held and q.Match(env) has just failed.
func (e *engine) unexpected(env match.Envelope, h transport.Header) *message {
	msg := e.getMessage(h)
	switch {
	case int(h.Len) <= cap(msg.buf):
		msg.data = msg.buf[:h.Len]
	case h.Len <= maxKeptPayload:
		msg.data = make([]byte, h.Len)
		msg.buf = msg.data
	default:
		msg.data, msg.big = getBig(int(h.Len))
	}
	e.q.Store(env, msg)
	e.wakeProbes(env, h)
	return msg
}

// DeliverFrame implements transport.FrameSink: the whole of a frame in one
// call, under one lock, for transports that hold its payload in memory.
// It is the small-message path: h is handled through a pointer and the
// status is written in place, since copies of the header and status were a
// good part of its cost.
func (e *engine) DeliverFrame(h transport.Header, payload []byte) {
	if h.Kind != transport.KindData {
		e.Deliver(h, nil)
		return
	}
	e.deliverFrame(&h, payload)
}

func (e *engine) deliverFrame(h *transport.Header, payload []byte) {
	e.mu.Lock()
	e.deliverFrameLocked(h, payload)
	e.unlock()
}

// DeliverFrames implements transport.FrameBatchSink: the frames of a
// window of small messages, matched under one lock.
func (e *engine) DeliverFrames(src transport.FrameSource) {
	var h transport.Header
	e.mu.Lock()
	for {
		payload, ok := src.NextFrame(&h)
		if !ok {
			break
		}
		e.deliverFrameLocked(&h, payload)
	}
	e.unlock()
}

// deliverFrameLocked is deliverFrame's work for data frame h; e.mu is held.
func (e *engine) deliverFrameLocked(h *transport.Header, payload []byte) {
	env := match.Envelope{Context: h.Context, Source: h.Src, Tag: h.Tag}
	r, ok := e.q.Match(env)
	if !ok {
		msg := e.unexpected(env, *h)
		copy(msg.data, payload)
		msg.complete = true
		return
	}
	if dst, ok := e.accept(r, h); ok {
		copy(dst, payload)
		r.completeWith(h)
	}
}

// accept takes the message with header h into receive r, which matched it:
// it acknowledges a synchronous send and returns where the payload goes
// (r's buffer, or for a value receive new memory r owns). If the message
// cannot land in r, it completes r with the reason and returns false.
// e.mu is held.
func (e *engine) accept(r *request, h *transport.Header) ([]byte, bool) {
	if h.Flags&transport.FlagSync != 0 {
		e.acknowledge(*h)
	}
	if err := r.check(h); err != nil {
		r.fail(err)
		return nil, false
	}
	if r.value {
		r.data = make([]byte, h.Len)
		return r.data, true
	}
	return r.buf[:h.Len], true
}

// Deliver implements transport.Sink.
func (e *engine) Deliver(h transport.Header, buf []byte) {
	e.mu.Lock()
	defer e.unlock()
	switch h.Kind {
	case transport.KindAck:
		if r, ok := e.syncs[h.Seq]; ok {
			delete(e.syncs, h.Seq)
			r.completeStatus(Status{Source: r.peer, Tag: r.tag}, nil)
		}
		return
	case transport.KindData:
	default:
		return
	}
	if int(h.Src) >= len(e.inflight) {
		return
	}
	s := e.inflight[h.Src]
	e.inflight[h.Src] = slot{}
	switch {
	case s.req != nil:
		s.req.completeStatus(statusOf(s.req.comm, &h), nil)
	case s.msg != nil:
		m := s.msg
		m.complete = true
		if m.waiter != nil || m.discard {
			e.fill(m.waiter, m)
		}
	}
}

// fill completes receive r from the unexpected message m, which the queue
// no longer holds and whose payload is complete (or lost), and recycles m.
// A nil r (or a discarded m) only recycles.
func (e *engine) fill(r *request, m *message) {
	switch {
	case m.discard || r == nil:
	case m.err != nil:
		r.fail(m.err)
	case r.value:
		r.data = m.data
		m.buf, m.big = nil, nil // the request owns that memory now
		r.completeStatus(statusOf(r.comm, &m.h), nil)
	default:
		copy(r.buf, m.data)
		r.completeStatus(statusOf(r.comm, &m.h), nil)
	}
	e.putMessage(m)
}

// maxKeptPayload is the largest payload buffer a recycled message keeps.
const maxKeptPayload = 64 << 10

// maxFreeMessages bounds the recycled-message list.
const maxFreeMessages = 256

func (e *engine) getMessage(h transport.Header) *message {
	if n := len(e.free); n > 0 {
		m := e.free[n-1]
		e.free = e.free[:n-1]
		m.h = h
		return m
	}
	return &message{h: h}
}

func (e *engine) putMessage(m *message) {
	putBig(m.big)
	m.big = nil
	if len(e.free) >= maxFreeMessages {
		return
	}
	*m = message{buf: m.buf}
	e.free = append(e.free, m)
}

// PeerLost implements transport.Sink. It tells the launcher first, so that
// the launcher blames the peer, not this rank, if this rank fails because of
// the loss.
func (e *engine) PeerLost(rank int, err error) {
	e.w.reportLost(rank)
	e.mu.Lock()
	defer e.unlock()
	e.loseLocked(rank, fmt.Errorf("%w: rank %d: %w", ErrPeerLost, rank, err))
}

func (e *engine) loseLocked(rank int, err error) {
	if rank < 0 || rank >= len(e.lost) || e.lost[rank] != nil {
		return
	}
	e.lost[rank] = err
	e.trouble.Store(true)
	if e.anyLost == nil {
		e.anyLost = err
	}
	src := int32(rank)
	for _, r := range e.q.RemovePosted(func(p match.Envelope, _ *request) bool {
		return p.Source == src || p.Source == match.Any
	}) {
		r.fail(err)
	}
	s := e.inflight[rank]
	e.inflight[rank] = slot{}
	if s.req != nil {
		s.req.fail(err)
	}
	if s.msg != nil {
		s.msg.err = err
		if s.msg.waiter != nil {
			s.msg.waiter.fail(err)
			s.msg.discard = true
		}
	}
	for seq, r := range e.syncs {
		if r.dst == src {
			delete(e.syncs, seq)
			r.fail(err)
		}
	}
	kept := e.probes[:0]
	for _, p := range e.probes {
		if p.pattern.Source == src || p.pattern.Source == match.Any {
			p.fail(err)
		} else {
			kept = append(kept, p)
		}
	}
	e.probes = kept
}

// abort fails every pending and future operation with err.
func (e *engine) abort(err error) {
	e.mu.Lock()
	defer e.unlock()
	if e.aborted != nil {
		return
	}
	e.aborted = err
	e.trouble.Store(true)
	for _, r := range e.q.RemovePosted(func(match.Envelope, *request) bool { return true }) {
		r.fail(err)
	}
	for i, s := range e.inflight {
		if s.req != nil {
			s.req.fail(err)
			e.inflight[i] = slot{}
		}
	}
	for seq, r := range e.syncs {
		delete(e.syncs, seq)
		r.fail(err)
	}
	for _, p := range e.probes {
		p.fail(err)
	}
	e.probes = nil
}

// acknowledge answers a synchronous-mode message once it is matched. The ack
// is sent from its own goroutine: the engine lock is held here and a
// transport may block.
func (e *engine) acknowledge(h transport.Header) {
	if h.Flags&transport.FlagSync == 0 {
		return
	}
	ack := transport.Header{Kind: transport.KindAck, Context: h.Context, Src: h.Dst, Dst: h.Src, Tag: h.Tag, Seq: h.Seq}
	e.acks.Add(1)
	go func() { // exits when the ack is sent or fails; joined by world.close
		defer e.acks.Done()
		// A failed ack means the sender is gone; its own side reports that.
		_ = e.w.route(int(ack.Dst)).Send(ack, nil)
	}()
}

// failedLocked reports why an operation on peer (a world rank, or Any) cannot
// proceed, or nil.
func (e *engine) failedLocked(peer int32) error {
	if e.aborted != nil {
		return e.aborted
	}
	if peer == match.Any {
		return e.anyLost
	}
	if peer >= 0 && int(peer) < len(e.lost) {
		return e.lost[peer]
	}
	return nil
}

// post starts receive (or probe) r. It completes r at once when a matching
// message is already here, or when the peer is gone; otherwise r waits in
// the queue (probes in e.probes).
func (e *engine) post(r *request) {
	e.mu.Lock()
	e.postLocked(r)
	e.unlock()
}

// irecv posts a receive of typed elements into buf and returns its
// Request: the request and the Request are taken, and the receive posted,
// under one lock.
func (e *engine) irecv(c *Comm, src, tag int, buf []byte, typ uint8) *Request {
	p := c.pattern(src, tag)
	e.mu.Lock()
	r := e.takeRequestLocked()
	r.comm, r.op, r.peer, r.tag, r.pattern = c, "irecv", src, tag, p
	r.buf, r.typ = buf, typ
	q := e.newPublicLocked()
	q.r = r
	e.postLocked(r)
	e.unlock()
	return q
}

// postLocked is post with e.mu held.
func (e *engine) postLocked(r *request) {
	if r.probe {
		e.probeLocked(r)
		return
	}
	m, _, ok := e.q.Post(r.pattern, r)
	if !ok {
		if err := e.failedLocked(r.pattern.Source); err != nil {
			e.q.Cancel(r)
			r.fail(err)
		}
		return
	}
	e.acknowledge(m.h)
	if err := r.check(&m.h); err != nil {
		r.fail(err)
		if m.complete || m.err != nil {
			e.putMessage(m)
		} else {
			m.discard = true // recycled when its payload is complete
		}
		return
	}
	if m.complete || m.err != nil {
		e.fill(r, m)
		return
	}
	m.waiter = r
}

func (e *engine) probeLocked(r *request) {
	if m, _, ok := e.q.Probe(r.pattern); ok {
		r.completeStatus(statusOf(r.comm, &m.h), nil)
		return
	}
	if err := e.failedLocked(r.pattern.Source); err != nil {
		r.fail(err)
		return
	}
	e.probes = append(e.probes, r)
}

// iprobe checks for a matching message without waiting.
func (e *engine) iprobe(c *Comm, p match.Envelope) (Status, bool, error) {
	e.mu.Lock()
	defer e.unlock()
	if m, _, ok := e.q.Probe(p); ok {
		return statusOf(c, &m.h), true, nil
	}
	return Status{}, false, e.failedLocked(p.Source)
}

func (e *engine) wakeProbes(env match.Envelope, h transport.Header) {
	if len(e.probes) == 0 {
		return
	}
	kept := e.probes[:0]
	for _, p := range e.probes {
		if envelopeMatches(p.pattern, env) {
			p.completeStatus(statusOf(p.comm, &h), nil)
		} else {
			kept = append(kept, p)
		}
	}
	e.probes = kept
}

// cancel withdraws an unmatched receive or probe; false if it already matched.
func (e *engine) cancel(r *request, err error) bool {
	e.mu.Lock()
	defer e.unlock()
	if r.probe {
		for i, p := range e.probes {
			if p == r {
				e.probes = append(e.probes[:i], e.probes[i+1:]...)
				r.fail(err)
				return true
			}
		}
		return false
	}
	if e.q.Cancel(r) {
		r.fail(err)
		return true
	}
	return false
}

// send sends one data frame. For a synchronous send it returns the request
// that completes when the receiver matched the message; otherwise nil.
func (e *engine) send(h *transport.Header, payload []byte, sync *request) error {
	if sync == nil && !e.trouble.Load() {
		if sh := e.w.shmRoutes; sh != nil && sh[h.Dst] != nil {
			return sh[h.Dst].SendHeader(h, payload)
		}
		return e.w.route(int(h.Dst)).Send(*h, payload)
	}
	e.mu.Lock()
	if err := e.failedLocked(h.Dst); err != nil {
		e.mu.Unlock()
		return err
	}
	if sync != nil {
		e.nextSeq++
		h.Seq = e.nextSeq
		h.Flags |= transport.FlagSync
		sync.dst = h.Dst
		e.syncs[h.Seq] = sync
	}
	e.mu.Unlock()
	err := e.w.route(int(h.Dst)).Send(*h, payload)
	if err != nil && sync != nil {
		e.mu.Lock()
		delete(e.syncs, h.Seq)
		e.mu.Unlock()
	}
	return err
}
