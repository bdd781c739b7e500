package match

import (
	"fmt"
	"slices"
	"testing"
)

// checkInvariants verifies the internal structure of q: every list is well
// linked, every node is where its envelope says, post sequence numbers are
// increasing, and the counters agree with the lists.
func (q *Queue[R, M]) checkInvariants() error {
	// Queue-wide posted list.
	np := 0
	var prev *pnode[R, M]
	for n := q.gposted.head; n != nil; n = n.gnext {
		if n.gprev != prev {
			return fmt.Errorf("posted list: bad gprev at seq %d", n.seq)
		}
		if prev != nil && prev.seq >= n.seq {
			return fmt.Errorf("posted list: seq %d after %d", n.seq, prev.seq)
		}
		if n.c == nil || n.c.id != n.p.Context {
			return fmt.Errorf("posted seq %d: wrong context", n.seq)
		}
		prev, np = n, np+1
	}
	if q.gposted.tail != prev {
		return fmt.Errorf("posted list: bad tail")
	}
	if np != q.nposted {
		return fmt.Errorf("posted count %d, list has %d", q.nposted, np)
	}
	checkP := func(l *plist[R, M]) (int, error) {
		k := 0
		var prev *pnode[R, M]
		for n := l.head; n != nil; n = n.next {
			if n.prev != prev {
				return 0, fmt.Errorf("source list: bad prev")
			}
			if prev != nil && prev.seq >= n.seq {
				return 0, fmt.Errorf("source list: seq %d after %d", n.seq, prev.seq)
			}
			prev, k = n, k+1
		}
		if l.tail != prev {
			return 0, fmt.Errorf("source list: bad tail")
		}
		return k, nil
	}
	checkU := func(l *ulist[M]) (int, error) {
		k := 0
		var prev *unode[M]
		for n := l.head; n != nil; n = n.next {
			if n.prev != prev {
				return 0, fmt.Errorf("unexpected source list: bad prev")
			}
			prev, k = n, k+1
		}
		if l.tail != prev {
			return 0, fmt.Errorf("unexpected source list: bad tail")
		}
		return k, nil
	}
	np, nu := 0, 0
	inSlot := make(map[*pnode[R, M]]bool, q.nposted)
	for id, c := range q.ctxs {
		if c.id != id {
			return fmt.Errorf("context %d stored under %d", c.id, id)
		}
		k, err := checkP(&c.anyPost)
		if err != nil {
			return err
		}
		for n := c.anyPost.head; n != nil; n = n.next {
			if n.p.Source != Any || n.c != c {
				return fmt.Errorf("receive %+v in wildcard list", n.p)
			}
			inSlot[n] = true
		}
		np += k
		nSlotU := 0
		for i := -1; i < len(c.slots); i++ {
			s := &c.overflow
			if i >= 0 {
				s = &c.slots[i]
			}
			k, err := checkP(&s.posted)
			if err != nil {
				return err
			}
			np += k
			for n := s.posted.head; n != nil; n = n.next {
				if n.p.Source == Any || c.slot(n.p.Source) != s || n.c != c {
					return fmt.Errorf("receive %+v in wrong slot", n.p)
				}
				inSlot[n] = true
			}
			k, err = checkU(&s.unexp)
			if err != nil {
				return err
			}
			nSlotU += k
			for n := s.unexp.head; n != nil; n = n.next {
				if c.slot(n.env.Source) != s || n.env.Context != c.id {
					return fmt.Errorf("message %+v in wrong slot", n.env)
				}
			}
		}
		k = 0
		var prev *unode[M]
		for n := c.arrivals.head; n != nil; n = n.anext {
			if n.aprev != prev {
				return fmt.Errorf("arrival list: bad aprev")
			}
			prev, k = n, k+1
		}
		if c.arrivals.tail != prev {
			return fmt.Errorf("arrival list: bad tail")
		}
		if k != nSlotU {
			return fmt.Errorf("context %d: %d arrivals but %d in source lists", id, k, nSlotU)
		}
		nu += k
	}
	if np != q.nposted {
		return fmt.Errorf("posted count %d, source lists hold %d", q.nposted, np)
	}
	if nu != q.nunexp {
		return fmt.Errorf("unexpected count %d, lists hold %d", q.nunexp, nu)
	}
	for n := q.gposted.head; n != nil; n = n.gnext {
		if !inSlot[n] {
			return fmt.Errorf("posted seq %d not in its source list", n.seq)
		}
	}
	return nil
}

// Operations for the table-driven tests. Receives are strings (their names),
// messages are strings (their payloads).
type op interface {
	apply(t *testing.T, q *Queue[string, string], step int)
}

func env(ctx uint32, src, tag int32) Envelope { return Envelope{Context: ctx, Source: src, Tag: tag} }

// post posts receive r with pattern p and expects the given matched message
// ("" means: no match, r stays posted).
type post struct {
	p    Envelope
	r    string
	want string
}

func (o post) apply(t *testing.T, q *Queue[string, string], step int) {
	t.Helper()
	m, e, ok := q.Post(o.p, o.r)
	switch {
	case o.want == "" && ok:
		t.Errorf("step %d: Post(%+v, %q) = %q, %+v, true; want no match", step, o.p, o.r, m, e)
	case o.want != "" && (!ok || m != o.want):
		t.Errorf("step %d: Post(%+v, %q) = %q, %+v, %v; want %q, true", step, o.p, o.r, m, e, ok, o.want)
	case ok && !o.p.Matches(e):
		t.Errorf("step %d: Post(%+v) returned envelope %+v that does not match", step, o.p, e)
	}
}

// arrive delivers message m with envelope e and expects receive want to be
// matched ("" means: stored as unexpected).
type arrive struct {
	e    Envelope
	m    string
	want string
}

func (o arrive) apply(t *testing.T, q *Queue[string, string], step int) {
	t.Helper()
	r, ok := q.Arrive(o.e, o.m)
	if ok != (o.want != "") || r != o.want {
		t.Errorf("step %d: Arrive(%+v, %q) = %q, %v; want %q, %v", step, o.e, o.m, r, ok, o.want, o.want != "")
	}
}

type cancel struct {
	r    string
	want bool
}

func (o cancel) apply(t *testing.T, q *Queue[string, string], step int) {
	t.Helper()
	if got := q.Cancel(o.r); got != o.want {
		t.Errorf("step %d: Cancel(%q) = %v; want %v", step, o.r, got, o.want)
	}
}

// probe (or take, if take is set) with pattern p expecting message want
// ("" means none).
type probe struct {
	p    Envelope
	take bool
	want string
}

func (o probe) apply(t *testing.T, q *Queue[string, string], step int) {
	t.Helper()
	name := "Probe"
	f := q.Probe
	if o.take {
		name, f = "Take", q.Take
	}
	m, e, ok := f(o.p)
	if ok != (o.want != "") || m != o.want {
		t.Errorf("step %d: %s(%+v) = %q, %+v, %v; want %q, %v", step, name, o.p, m, e, ok, o.want, o.want != "")
	}
	if ok && !o.p.Matches(e) {
		t.Errorf("step %d: %s(%+v) returned envelope %+v that does not match", step, name, o.p, e)
	}
}

// removeSrc removes posted receives on ctx whose source is src or Any.
type removeSrc struct {
	ctx  uint32
	src  int32
	want []string
}

func (o removeSrc) apply(t *testing.T, q *Queue[string, string], step int) {
	t.Helper()
	got := q.RemovePosted(func(p Envelope, _ string) bool {
		return p.Context == o.ctx && (p.Source == o.src || p.Source == Any)
	})
	if !slices.Equal(got, o.want) {
		t.Errorf("step %d: RemovePosted(ctx %d, source %d) = %q; want %q", step, o.ctx, o.src, got, o.want)
	}
}

type length struct{ posted, unexp int }

func (o length) apply(t *testing.T, q *Queue[string, string], step int) {
	t.Helper()
	if p, u := q.Len(); p != o.posted || u != o.unexp {
		t.Errorf("step %d: Len() = %d, %d; want %d, %d", step, p, u, o.posted, o.unexp)
	}
}

func TestQueue(t *testing.T) {
	tests := []struct {
		name string
		ops  []op
	}{
		{"post then arrive", []op{
			post{env(0, 1, 7), "r1", ""},
			length{1, 0},
			arrive{env(0, 1, 7), "m1", "r1"},
			length{0, 0},
		}},
		{"arrive then post", []op{
			arrive{env(0, 1, 7), "m1", ""},
			length{0, 1},
			post{env(0, 1, 7), "r1", "m1"},
			length{0, 0},
		}},
		{"context isolates messages", []op{
			arrive{env(1, 0, 0), "m-ctx1", ""},
			post{env(2, 0, 0), "r-ctx2", ""},
			post{env(2, Any, Any), "r-ctx2-any", ""},
			probe{env(2, Any, Any), false, ""},
			arrive{env(3, 0, 0), "m-ctx3", ""},
			post{env(1, Any, Any), "r-ctx1", "m-ctx1"},
			arrive{env(2, 0, 0), "m-ctx2", "r-ctx2"},
			length{1, 1},
		}},
		{"context isolates receives", []op{
			post{env(5, 0, 0), "r5", ""},
			arrive{env(6, 0, 0), "m6", ""},
			arrive{env(5, 0, 0), "m5", "r5"},
		}},
		{"source and tag must match", []op{
			arrive{env(0, 1, 2), "m12", ""},
			post{env(0, 2, 2), "r22", ""},
			post{env(0, 1, 3), "r13", ""},
			length{2, 1},
			post{env(0, 1, 2), "r12", "m12"},
		}},
		{"any source receive", []op{
			arrive{env(0, 3, 5), "m3", ""},
			post{env(0, Any, 5), "r", "m3"},
			post{env(0, Any, 5), "r2", ""},
			arrive{env(0, 2, 4), "wrong-tag", ""},
			arrive{env(0, 0, 5), "m0", "r2"},
		}},
		{"any tag receive", []op{
			arrive{env(0, 3, 9), "m9", ""},
			post{env(0, 3, Any), "r", "m9"},
			post{env(0, 3, Any), "r2", ""},
			arrive{env(0, 2, 4), "wrong-source", ""},
			arrive{env(0, 3, 0), "m0", "r2"},
		}},
		{"any source and tag takes oldest arrival", []op{
			arrive{env(0, 2, 1), "first", ""},
			arrive{env(0, 0, 3), "second", ""},
			arrive{env(0, 1, 2), "third", ""},
			post{env(0, Any, Any), "a", "first"},
			post{env(0, Any, Any), "b", "second"},
			post{env(0, Any, Any), "c", "third"},
		}},
		{"non-overtaking same source", []op{
			arrive{env(0, 1, 4), "m1", ""},
			arrive{env(0, 1, 4), "m2", ""},
			arrive{env(0, 1, 4), "m3", ""},
			post{env(0, 1, 4), "a", "m1"},
			post{env(0, 1, Any), "b", "m2"},
			post{env(0, Any, 4), "c", "m3"},
		}},
		{"non-overtaking with tag wildcard skips nothing", []op{
			arrive{env(0, 1, 8), "tag8", ""},
			arrive{env(0, 1, 4), "tag4", ""},
			post{env(0, 1, 4), "specific", "tag4"},
			arrive{env(0, 1, 4), "tag4b", ""},
			post{env(0, 1, Any), "any", "tag8"},
			post{env(0, 1, Any), "any2", "tag4b"},
		}},
		{"any source oldest across sources", []op{
			arrive{env(0, 3, 1), "s3", ""},
			arrive{env(0, 0, 1), "s0", ""},
			post{env(0, 0, 1), "from0", "s0"},
			arrive{env(0, 0, 1), "s0b", ""},
			post{env(0, Any, 1), "any", "s3"},
			post{env(0, Any, 1), "any2", "s0b"},
		}},
		{"posted receives match in post order", []op{
			post{env(0, 1, 1), "r1", ""},
			post{env(0, 1, 1), "r2", ""},
			post{env(0, 1, 1), "r3", ""},
			arrive{env(0, 1, 1), "a", "r1"},
			arrive{env(0, 1, 1), "b", "r2"},
			arrive{env(0, 1, 1), "c", "r3"},
		}},
		{"post order mixes specific and any source", []op{
			post{env(0, Any, 1), "any1", ""},
			post{env(0, 2, 1), "spec1", ""},
			post{env(0, Any, Any), "any2", ""},
			post{env(0, 2, Any), "spec2", ""},
			arrive{env(0, 2, 1), "a", "any1"},
			arrive{env(0, 2, 1), "b", "spec1"},
			arrive{env(0, 2, 1), "c", "any2"},
			arrive{env(0, 2, 1), "d", "spec2"},
			arrive{env(0, 2, 1), "e", ""},
		}},
		{"post order: specific before any", []op{
			post{env(0, 2, 1), "spec", ""},
			post{env(0, Any, 1), "any", ""},
			arrive{env(0, 2, 1), "a", "spec"},
			arrive{env(0, 3, 1), "b", "any"},
		}},
		{"arrival skips non-matching earlier receives", []op{
			post{env(0, 1, 1), "tag1", ""},
			post{env(0, Any, 2), "anytag2", ""},
			post{env(0, 1, 2), "tag2", ""},
			arrive{env(0, 1, 2), "m", "anytag2"},
			arrive{env(0, 1, 2), "m2", "tag2"},
			arrive{env(0, 1, 1), "m3", "tag1"},
		}},
		{"cancelled receive never matches", []op{
			post{env(0, 1, 1), "r1", ""},
			post{env(0, Any, 1), "r2", ""},
			cancel{"r1", true},
			cancel{"r1", false},
			arrive{env(0, 1, 1), "m", "r2"},
			post{env(0, Any, Any), "r3", ""},
			cancel{"r3", true},
			arrive{env(0, 1, 1), "m2", ""},
			length{0, 1},
		}},
		{"cancel after match fails", []op{
			post{env(0, 1, 1), "r", ""},
			arrive{env(0, 1, 1), "m", "r"},
			cancel{"r", false},
			cancel{"never-posted", false},
		}},
		{"probe does not consume", []op{
			arrive{env(0, 1, 1), "m1", ""},
			arrive{env(0, 2, 1), "m2", ""},
			probe{env(0, Any, Any), false, "m1"},
			probe{env(0, Any, Any), false, "m1"},
			probe{env(0, 2, Any), false, "m2"},
			probe{env(0, 3, Any), false, ""},
			probe{env(9, Any, Any), false, ""},
			length{0, 2},
			post{env(0, Any, 1), "r", "m1"},
		}},
		{"take removes what probe saw", []op{
			arrive{env(0, 1, 1), "m1", ""},
			arrive{env(0, 1, 1), "m2", ""},
			probe{env(0, Any, Any), false, "m1"},
			probe{env(0, 1, 1), true, "m1"},
			probe{env(0, Any, Any), false, "m2"},
			probe{env(0, Any, Any), true, "m2"},
			probe{env(0, Any, Any), true, ""},
			probe{env(7, Any, Any), true, ""},
			length{0, 0},
		}},
		{"probe ignores posted receives", []op{
			post{env(0, 1, 1), "r", ""},
			probe{env(0, 1, 1), false, ""},
			arrive{env(0, 1, 1), "m", "r"},
		}},
		{"remove posted for dead peer", []op{
			post{env(0, 1, 1), "from1", ""},
			post{env(0, 2, 1), "from2", ""},
			post{env(0, Any, 1), "any", ""},
			post{env(1, 1, 1), "otherctx", ""},
			post{env(0, 1, Any), "from1b", ""},
			removeSrc{0, 1, []string{"from1", "any", "from1b"}},
			removeSrc{0, 1, nil},
			length{2, 0},
			arrive{env(0, 1, 1), "m", ""},
			arrive{env(0, 2, 1), "m2", "from2"},
			arrive{env(1, 1, 1), "m3", "otherctx"},
		}},
		{"large and odd ranks", []op{
			arrive{env(0, 1<<20+5, 1), "big", ""},
			arrive{env(0, 70000, 1), "mid", ""},
			post{env(0, 1<<20+6, 1), "other-big", ""},
			post{env(0, 1<<20+5, Any), "r", "big"},
			post{env(0, Any, 1), "r2", "mid"},
			arrive{env(0, 1<<20+6, 1), "m", "other-big"},
			length{0, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q Queue[string, string]
			for i, o := range tt.ops {
				o.apply(t, &q, i)
				if err := q.checkInvariants(); err != nil {
					t.Fatalf("step %d: broken invariant: %v", i, err)
				}
			}
		})
	}
}

func TestNewQueueIsEmpty(t *testing.T) {
	var q Queue[*int, []byte]
	if p, u := q.Len(); p != 0 || u != 0 {
		t.Errorf("Len() = %d, %d; want 0, 0", p, u)
	}
	if _, _, ok := q.Probe(env(0, Any, Any)); ok {
		t.Errorf("Probe on empty queue: got ok; want none")
	}
	if q.Cancel(nil) {
		t.Errorf("Cancel(nil) on empty queue = true; want false")
	}
	if got := q.RemovePosted(func(Envelope, *int) bool { return true }); got != nil {
		t.Errorf("RemovePosted on empty queue = %v; want nil", got)
	}
}

func TestRecycledNodesDropReferences(t *testing.T) {
	var q Queue[*int, *int]
	x := new(int)
	q.Arrive(env(0, 0, 0), x)
	q.Post(env(0, 0, 0), x)
	q.Post(env(0, 0, 0), x)
	q.Arrive(env(0, 0, 0), x)
	if q.freeU == nil || q.freeU.m != nil {
		t.Errorf("recycled message node still references payload")
	}
	if q.freeP == nil || q.freeP.r != nil || q.freeP.c != nil {
		t.Errorf("recycled receive node still references request")
	}
}

func TestOpaquePayload(t *testing.T) {
	var q Queue[int, []byte]
	q.Arrive(env(0, 0, 0), nil)
	q.Arrive(env(0, 0, 0), []byte{})
	q.Arrive(env(0, 0, 0), []byte("x"))
	for i, want := range []string{"nil", "empty", "x"} {
		m, _, ok := q.Post(env(0, 0, 0), i)
		got := string(m)
		switch {
		case m == nil:
			got = "nil"
		case len(m) == 0:
			got = "empty"
		}
		if !ok || got != want {
			t.Errorf("Post #%d = %s, %v; want %s, true", i, got, ok, want)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	var q Queue[*int, *int]
	r, r2, m := new(int), new(int), new(int)
	e := env(3, 2, 1)
	anySrc := env(3, Any, 1)
	// Some standing traffic, so the steady state is not trivially empty.
	q.Post(env(3, 1, 5), r)
	q.Arrive(env(3, 0, 9), m)
	cases := []struct {
		name string
		f    func()
	}{
		{"post+arrive", func() { q.Post(e, r); q.Arrive(e, m) }},
		{"arrive+post", func() { q.Arrive(e, m); q.Post(e, r) }},
		{"any post+arrive", func() { q.Post(anySrc, r); q.Arrive(e, m) }},
		{"arrive+probe+take", func() { q.Arrive(e, m); q.Probe(anySrc); q.Take(e) }},
		{"post+cancel", func() { q.Post(e, r2); q.Cancel(r2) }},
		{"other context", func() { q.Arrive(env(4, 2, 1), m); q.Post(env(4, Any, 1), r) }},
	}
	for _, c := range cases {
		c.f() // warm up
		if n := testing.AllocsPerRun(1000, c.f); n != 0 {
			t.Errorf("%s: %v allocs per run; want 0", c.name, n)
		}
	}
	if p, u := q.Len(); p != 1 || u != 1 {
		t.Errorf("Len() = %d, %d; want 1, 1", p, u)
	}
}

// TestMatchStoresNothing checks the two halves of Arrive: Match removes
// the earliest matching posted receive and stores nothing when none
// matches; Store then queues the message behind earlier arrivals.
func TestMatchStoresNothing(t *testing.T) {
	var q Queue[int, string]
	env := Envelope{Context: 1, Source: 2, Tag: 3}
	if _, ok := q.Match(env); ok {
		t.Fatal("Match on an empty queue reported a receive")
	}
	if p, u := q.Len(); p != 0 || u != 0 {
		t.Fatalf("after a failed Match: %d posted, %d unexpected; want 0, 0", p, u)
	}
	q.Store(env, "first")
	q.Store(env, "second")
	if m, _, ok := q.Post(Envelope{Context: 1, Source: Any, Tag: 3}, 10); !ok || m != "first" {
		t.Fatalf("Post got %q, %v; want the first stored message", m, ok)
	}
	q.Post(Envelope{Context: 1, Source: 2, Tag: Any}, 11) // takes "second"
	q.Post(Envelope{Context: 1, Source: Any, Tag: Any}, 12)
	q.Post(Envelope{Context: 1, Source: 2, Tag: 3}, 13)
	if r, ok := q.Match(env); !ok || r != 12 {
		t.Fatalf("Match got %d, %v; want the earliest posted receive 12", r, ok)
	}
	if r, ok := q.Match(env); !ok || r != 13 {
		t.Fatalf("Match got %d, %v; want 13", r, ok)
	}
	if p, u := q.Len(); p != 0 || u != 0 {
		t.Fatalf("at the end: %d posted, %d unexpected; want 0, 0", p, u)
	}
}
