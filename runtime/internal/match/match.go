package match

// Any is the wildcard value: in a receive pattern's Source it matches every
// sender, in its Tag it matches every tag. It must not appear in the envelope
// of an arriving message.
const Any = -1

// maxDenseSource bounds the per-context slot slice; sources at or above it
// (and negative sources) share the context's overflow slot.
const maxDenseSource = 1 << 20

// Envelope is the matching information a message carries and a receive asks
// for.
type Envelope struct {
	Context uint32 // communicator context; never a wildcard
	Source  int32  // sender rank (>= 0); Any only in receive patterns
	Tag     int32  // message tag (>= 0); Any only in receive patterns
}

// Matches reports whether a message with concrete envelope e satisfies the
// receive pattern p: same Context, and Source and Tag each equal or Any in p.
func (p Envelope) Matches(e Envelope) bool {
	return p.Context == e.Context &&
		(p.Source == Any || p.Source == e.Source) &&
		(p.Tag == Any || p.Tag == e.Tag)
}

// sameSourceTag is Matches without the context comparison (callers have
// already selected the context).
func sameSourceTag(p, e Envelope) bool {
	return (p.Source == Any || p.Source == e.Source) &&
		(p.Tag == Any || p.Tag == e.Tag)
}

// pnode is a posted receive.
type pnode[R comparable, M any] struct {
	p   Envelope
	r   R
	seq uint64
	c   *ctxState[R, M]
	// Queue-wide post-order list.
	gprev, gnext *pnode[R, M]
	// Per-source list, or the context's wildcard list when p.Source == Any.
	// next doubles as the free-list link.
	prev, next *pnode[R, M]
}

// unode is an unexpected message.
type unode[M any] struct {
	env Envelope
	m   M
	// Per-context arrival-order list.
	aprev, anext *unode[M]
	// Per-source list; next doubles as the free-list link.
	prev, next *unode[M]
}

type plist[R comparable, M any] struct{ head, tail *pnode[R, M] }

func (l *plist[R, M]) push(n *pnode[R, M]) {
	n.next = nil
	n.prev = l.tail
	if l.tail == nil {
		l.head = n
	} else {
		l.tail.next = n
	}
	l.tail = n
}

func (l *plist[R, M]) unlink(n *pnode[R, M]) {
	if n.prev == nil {
		l.head = n.next
	} else {
		n.prev.next = n.next
	}
	if n.next == nil {
		l.tail = n.prev
	} else {
		n.next.prev = n.prev
	}
	n.prev, n.next = nil, nil
}

// first returns the earliest node of l whose pattern accepts e.
func (l *plist[R, M]) first(e Envelope) *pnode[R, M] {
	for n := l.head; n != nil; n = n.next {
		if sameSourceTag(n.p, e) {
			return n
		}
	}
	return nil
}

// ulist is a per-source FIFO of unexpected messages (prev/next links).
type ulist[M any] struct{ head, tail *unode[M] }

func (l *ulist[M]) push(n *unode[M]) {
	n.next = nil
	n.prev = l.tail
	if l.tail == nil {
		l.head = n
	} else {
		l.tail.next = n
	}
	l.tail = n
}

func (l *ulist[M]) unlink(n *unode[M]) {
	if n.prev == nil {
		l.head = n.next
	} else {
		n.prev.next = n.next
	}
	if n.next == nil {
		l.tail = n.prev
	} else {
		n.next.prev = n.prev
	}
	n.prev, n.next = nil, nil
}

func (l *ulist[M]) first(p Envelope) *unode[M] {
	for n := l.head; n != nil; n = n.next {
		if sameSourceTag(p, n.env) {
			return n
		}
	}
	return nil
}

// alist is a per-context arrival-order list of unexpected messages
// (aprev/anext links).
type alist[M any] struct{ head, tail *unode[M] }

func (l *alist[M]) push(n *unode[M]) {
	n.anext = nil
	n.aprev = l.tail
	if l.tail == nil {
		l.head = n
	} else {
		l.tail.anext = n
	}
	l.tail = n
}

func (l *alist[M]) unlink(n *unode[M]) {
	if n.aprev == nil {
		l.head = n.anext
	} else {
		n.aprev.anext = n.anext
	}
	if n.anext == nil {
		l.tail = n.aprev
	} else {
		n.anext.aprev = n.aprev
	}
	n.aprev, n.anext = nil, nil
}

func (l *alist[M]) first(p Envelope) *unode[M] {
	for n := l.head; n != nil; n = n.anext {
		if sameSourceTag(p, n.env) {
			return n
		}
	}
	return nil
}

// slot is the per-(context, source) state.
type slot[R comparable, M any] struct {
	posted plist[R, M] // specific-source receives, post order
	unexp  ulist[M]    // unexpected messages, arrival order
}

// ctxState is the per-context state.
type ctxState[R comparable, M any] struct {
	id       uint32
	slots    []slot[R, M] // indexed by source rank
	overflow slot[R, M]   // sources outside [0, maxDenseSource)
	anyPost  plist[R, M]  // Source == Any receives, post order
	arrivals alist[M]     // all unexpected messages, arrival order
}

// slot returns the slot for source src, or nil if it was never created (in
// which case it is empty). src must not be Any.
func (c *ctxState[R, M]) slot(src int32) *slot[R, M] {
	if uint32(src) < uint32(len(c.slots)) {
		return &c.slots[src]
	}
	if src < 0 || src >= maxDenseSource {
		return &c.overflow
	}
	return nil
}

// slotGrow is slot, creating the slot if needed.
func (c *ctxState[R, M]) slotGrow(src int32) *slot[R, M] {
	if s := c.slot(src); s != nil {
		return s
	}
	n := int(src) + 1
	if n < 2*len(c.slots) {
		n = 2 * len(c.slots)
	}
	if n > maxDenseSource {
		n = maxDenseSource
	}
	grown := make([]slot[R, M], n)
	copy(grown, c.slots)
	c.slots = grown
	return &c.slots[src]
}

// plistOf returns the list a posted receive with pattern p lives in.
func (c *ctxState[R, M]) plistOf(p Envelope) *plist[R, M] {
	if p.Source == Any {
		return &c.anyPost
	}
	s := c.slot(p.Source)
	if s == nil {
		panic("match: posted receive in missing slot")
	}
	return &s.posted
}

// Queue holds posted receives of type R and unexpected messages of type M,
// and matches them according to MPI's rules (see the package documentation).
// The zero value is an empty Queue ready to use. A Queue is not safe for
// concurrent use.
//
// R values are compared with == by [Queue.Cancel]; they should identify a
// receive uniquely (for example a pointer to the request).
type Queue[R comparable, M any] struct {
	ctxs map[uint32]*ctxState[R, M]
	last *ctxState[R, M] // cache of the most recently used context

	gposted plist[R, M] // all posted receives in post order (gprev/gnext)
	seq     uint64      // next post sequence number

	nposted, nunexp int

	freeP *pnode[R, M]
	freeU *unode[M]
}

// ctx returns the state for context id, creating it if create is set;
// otherwise it may return nil.
func (q *Queue[R, M]) ctx(id uint32, create bool) *ctxState[R, M] {
	if c := q.last; c != nil && c.id == id {
		return c
	}
	c := q.ctxs[id]
	if c == nil {
		if !create {
			return nil
		}
		if q.ctxs == nil {
			q.ctxs = make(map[uint32]*ctxState[R, M])
		}
		c = &ctxState[R, M]{id: id}
		q.ctxs[id] = c
	}
	q.last = c
	return c
}

// firstUnexp returns the earliest-arrived unexpected message in c matching
// pattern p, or nil.
func (c *ctxState[R, M]) firstUnexp(p Envelope) *unode[M] {
	if p.Source == Any {
		return c.arrivals.first(p)
	}
	if s := c.slot(p.Source); s != nil {
		return s.unexp.first(p)
	}
	return nil
}

// removeUnexp unlinks n from c and recycles it, returning its contents.
func (q *Queue[R, M]) removeUnexp(c *ctxState[R, M], n *unode[M]) (M, Envelope) {
	s := c.slot(n.env.Source)
	if s == nil {
		panic("match: unexpected message in missing slot")
	}
	s.unexp.unlink(n)
	c.arrivals.unlink(n)
	m, env := n.m, n.env
	var zero M
	n.m = zero
	n.next = q.freeU
	q.freeU = n
	q.nunexp--
	return m, env
}

// removePosted unlinks n from all lists and recycles it, returning its R.
func (q *Queue[R, M]) removePosted(n *pnode[R, M]) R {
	n.c.plistOf(n.p).unlink(n)
	// Queue-wide list.
	if n.gprev == nil {
		q.gposted.head = n.gnext
	} else {
		n.gprev.gnext = n.gnext
	}
	if n.gnext == nil {
		q.gposted.tail = n.gprev
	} else {
		n.gnext.gprev = n.gprev
	}
	r := n.r
	var zero R
	n.r = zero
	n.c = nil
	n.gprev, n.gnext = nil, nil
	n.next = q.freeP
	q.freeP = n
	q.nposted--
	return r
}

// Post posts a receive r with pattern p. If an unexpected message matches p,
// the earliest-arrived such message is removed and returned together with its
// envelope, ok is true, and r is not stored. Otherwise r is appended to the
// posted receives (after all receives posted before it) and ok is false.
//
// p.Context is matched exactly; p.Source and p.Tag may be [Any].
func (q *Queue[R, M]) Post(p Envelope, r R) (m M, env Envelope, ok bool) {
	c := q.ctx(p.Context, true)
	if n := c.firstUnexp(p); n != nil {
		m, env = q.removeUnexp(c, n)
		return m, env, true
	}
	n := q.freeP
	if n != nil {
		q.freeP = n.next
	} else {
		n = new(pnode[R, M])
	}
	n.p, n.r, n.seq, n.c = p, r, q.seq, c
	q.seq++
	if p.Source == Any {
		c.anyPost.push(n)
	} else {
		c.slotGrow(p.Source).posted.push(n)
	}
	n.gnext = nil
	n.gprev = q.gposted.tail
	if q.gposted.tail == nil {
		q.gposted.head = n
	} else {
		q.gposted.tail.gnext = n
	}
	q.gposted.tail = n
	q.nposted++
	return m, env, false
}

// Arrive delivers a message m with concrete envelope env (Source and Tag are
// not [Any]). If a posted receive matches env, the earliest-posted such
// receive is removed and returned with ok true, and m is not stored.
// Otherwise m is stored as an unexpected message, after all messages that
// arrived before it, and ok is false.
func (q *Queue[R, M]) Arrive(env Envelope, m M) (r R, ok bool) {
	if r, ok = q.Match(env); ok {
		return r, true
	}
	q.Store(env, m)
	return r, false
}

// Match is the first half of [Queue.Arrive]: if a posted receive matches
// env, the earliest-posted such receive is removed and returned with ok
// true; otherwise nothing changes and ok is false. It lets a caller build
// the unexpected message only when it is needed, and then [Queue.Store] it.
func (q *Queue[R, M]) Match(env Envelope) (r R, ok bool) {
	c := q.ctx(env.Context, true)
	var best *pnode[R, M]
	if s := c.slot(env.Source); s != nil {
		best = s.posted.first(env)
	}
	if w := c.anyPost.first(env); w != nil && (best == nil || w.seq < best.seq) {
		best = w
	}
	if best == nil {
		return r, false
	}
	return q.removePosted(best), true
}

// Store is the second half of [Queue.Arrive]: it stores m, with concrete
// envelope env, as an unexpected message after all that arrived before
// it. Call it only after [Queue.Match] returned false for env, with no
// Post in between, or a posted receive that matches env is passed over.
func (q *Queue[R, M]) Store(env Envelope, m M) {
	c := q.ctx(env.Context, true)
	s := c.slotGrow(env.Source)
	n := q.freeU
	if n != nil {
		q.freeU = n.next
	} else {
		n = new(unode[M])
	}
	n.env, n.m = env, m
	s.unexp.push(n)
	c.arrivals.push(n)
	q.nunexp++
}

// Cancel removes the posted receive r (compared with ==) and reports whether
// it was found. It returns false if r is not currently posted, for example
// because it has already been matched or cancelled. If r was posted more than
// once, only the earliest posting is removed. Cancel costs O(posted receives);
// it is not on the hot path.
func (q *Queue[R, M]) Cancel(r R) bool {
	for n := q.gposted.head; n != nil; n = n.gnext {
		if n.r == r {
			q.removePosted(n)
			return true
		}
	}
	return false
}

// Probe returns the earliest-arrived unexpected message matching pattern p,
// with its envelope, without removing it. ok is false if there is none.
func (q *Queue[R, M]) Probe(p Envelope) (m M, env Envelope, ok bool) {
	c := q.ctx(p.Context, false)
	if c == nil {
		return m, env, false
	}
	if n := c.firstUnexp(p); n != nil {
		return n.m, n.env, true
	}
	return m, env, false
}

// Take is [Queue.Probe] followed by removal of the message it found: it
// removes and returns the earliest-arrived unexpected message matching p.
// Probing with a pattern and then taking with the returned concrete envelope
// yields the probed message. ok is false if there is none.
func (q *Queue[R, M]) Take(p Envelope) (m M, env Envelope, ok bool) {
	c := q.ctx(p.Context, false)
	if c == nil {
		return m, env, false
	}
	if n := c.firstUnexp(p); n != nil {
		m, env = q.removeUnexp(c, n)
		return m, env, true
	}
	return m, env, false
}

// RemovePosted removes every posted receive for which match(pattern, r)
// returns true and returns them in post order (nil if none). It is meant for
// failing receives when a peer dies (those whose pattern names that source or
// Any). match must not call methods of q.
func (q *Queue[R, M]) RemovePosted(match func(p Envelope, r R) bool) []R {
	var out []R
	for n := q.gposted.head; n != nil; {
		next := n.gnext
		if match(n.p, n.r) {
			out = append(out, q.removePosted(n))
		}
		n = next
	}
	return out
}

// Len reports the number of posted receives and unexpected messages
// currently held.
func (q *Queue[R, M]) Len() (posted, unexpected int) {
	return q.nposted, q.nunexp
}
