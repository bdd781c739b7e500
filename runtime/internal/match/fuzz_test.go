package match

import (
	"slices"
	"testing"
)

// refQueue is the obviously-correct reference model: two slices in
// post/arrival order, scanned linearly.
type refQueue struct {
	posted []refRecv
	unexp  []refMsg
}

type refRecv struct {
	p Envelope
	r int
}

type refMsg struct {
	e Envelope
	m int
}

func (q *refQueue) post(p Envelope, r int) (int, Envelope, bool) {
	for i, u := range q.unexp {
		if p.Matches(u.e) {
			q.unexp = slices.Delete(q.unexp, i, i+1)
			return u.m, u.e, true
		}
	}
	q.posted = append(q.posted, refRecv{p, r})
	return 0, Envelope{}, false
}

func (q *refQueue) arrive(e Envelope, m int) (int, bool) {
	for i, pr := range q.posted {
		if pr.p.Matches(e) {
			q.posted = slices.Delete(q.posted, i, i+1)
			return pr.r, true
		}
	}
	q.unexp = append(q.unexp, refMsg{e, m})
	return 0, false
}

func (q *refQueue) cancel(r int) bool {
	for i, pr := range q.posted {
		if pr.r == r {
			q.posted = slices.Delete(q.posted, i, i+1)
			return true
		}
	}
	return false
}

func (q *refQueue) probe(p Envelope, take bool) (int, Envelope, bool) {
	for i, u := range q.unexp {
		if p.Matches(u.e) {
			if take {
				q.unexp = slices.Delete(q.unexp, i, i+1)
			}
			return u.m, u.e, true
		}
	}
	return 0, Envelope{}, false
}

func (q *refQueue) removePosted(match func(Envelope, int) bool) []int {
	var out []int
	q.posted = slices.DeleteFunc(q.posted, func(pr refRecv) bool {
		if match(pr.p, pr.r) {
			out = append(out, pr.r)
			return true
		}
		return false
	})
	return out
}

// fuzzReader hands out bytes of the fuzz input, then zeros.
type fuzzReader []byte

func (b *fuzzReader) next() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

// pattern decodes a receive pattern: 3 contexts, sources 0..3 or Any (rarely
// an out-of-range source), tags 0..3 or Any.
func (b *fuzzReader) pattern() Envelope {
	x := b.next()
	return Envelope{Context: uint32(x % 3), Source: source(x/3%8, true), Tag: tag(b.next() % 6)}
}

// envelope decodes a concrete message envelope.
func (b *fuzzReader) envelope() Envelope {
	x := b.next()
	return Envelope{Context: uint32(x % 3), Source: source(x/3%7, false), Tag: int32(x / 21 % 4)}
}

func source(x byte, wild bool) int32 {
	switch {
	case x < 4:
		return int32(x)
	case x == 4:
		return maxDenseSource + 1 // overflow slot
	case x == 5:
		return -2 // out of contract; overflow slot
	case wild:
		return Any
	default:
		return 1
	}
}

func tag(x byte) int32 {
	if x >= 4 {
		return Any
	}
	return int32(x)
}

// maxFuzzSteps bounds the operations decoded from one input. Short sequences
// over 3 contexts, 4 sources and 4 tags reach every matching situation, and
// the bound keeps each execution cheap, which matters when the fuzzer
// minimizes inputs (bytes past the bound are ignored and get cut at once).
const maxFuzzSteps = 256

// FuzzQueue runs a sequence of operations decoded from the input against a
// Queue and against refQueue and requires identical results, counts and
// structural invariants after every step.
func FuzzQueue(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 0})                                   // post then arrive
	f.Add([]byte{1, 3, 0, 1, 3, 0, 0, 21, 5, 0, 21, 5})            // arrivals then wildcard posts
	f.Add([]byte{0, 6, 1, 0, 18, 1, 0, 3, 5, 1, 3, 1, 1, 3, 1})    // mixed any/specific posts
	f.Add([]byte{0, 3, 1, 2, 0, 1, 3, 1})                          // post, cancel, arrive
	f.Add([]byte{1, 9, 1, 30, 3, 0, 5, 4, 3, 0, 5, 4, 3, 0})       // probe and take
	f.Add([]byte{0, 3, 1, 0, 6, 1, 0, 18, 2, 5, 3, 1, 1, 3, 1})    // remove posted
	f.Add([]byte{1, 12, 1, 15, 0, 12, 4, 0, 15, 4, 0, 18, 4})      // odd sources
	f.Add([]byte{0, 3, 1, 0, 131, 1, 2, 128, 1, 3, 1, 1, 3, 1})    // duplicate request ids
	f.Add([]byte{1, 0, 1, 0, 1, 0, 1, 0, 3, 18, 5, 0, 18, 5, 255}) // many messages

	f.Fuzz(fuzzOne)
}

func fuzzOne(t *testing.T, data []byte) {
	var q Queue[int, int]
	var ref refQueue
	in := fuzzReader(data)
	nextR, nextM := 1, 1
	for step := 0; len(in) > 0 && step < maxFuzzSteps; step++ {
		switch o := in.next(); o % 6 {
		case 0: // Post
			p := in.pattern()
			r := nextR
			if o >= 128 && nextR > 1 { // reuse an earlier request id
				r = int(o) % (nextR - 1)
			} else {
				nextR++
			}
			m, e, ok := q.Post(p, r)
			wm, we, wok := ref.post(p, r)
			if m != wm || e != we || ok != wok {
				t.Fatalf("step %d: Post(%+v, %d) = %d, %+v, %v; want %d, %+v, %v", step, p, r, m, e, ok, wm, we, wok)
			}
		case 1: // Arrive
			e := in.envelope()
			m := nextM
			nextM++
			r, ok := q.Arrive(e, m)
			wr, wok := ref.arrive(e, m)
			if r != wr || ok != wok {
				t.Fatalf("step %d: Arrive(%+v, %d) = %d, %v; want %d, %v", step, e, m, r, ok, wr, wok)
			}
		case 2: // Cancel
			r := int(in.next()) % (nextR + 1)
			if got, want := q.Cancel(r), ref.cancel(r); got != want {
				t.Fatalf("step %d: Cancel(%d) = %v; want %v", step, r, got, want)
			}
		case 3, 4: // Probe, Take
			p := in.pattern()
			take := o%6 == 4
			f := q.Probe
			if take {
				f = q.Take
			}
			m, e, ok := f(p)
			wm, we, wok := ref.probe(p, take)
			if m != wm || e != we || ok != wok {
				t.Fatalf("step %d: Probe/Take(take=%v, %+v) = %d, %+v, %v; want %d, %+v, %v", step, take, p, m, e, ok, wm, we, wok)
			}
		case 5: // RemovePosted
			x := in.pattern()
			var match func(Envelope, int) bool
			if o >= 128 {
				match = func(_ Envelope, r int) bool { return r%2 == int(x.Tag)&1 }
			} else {
				match = func(p Envelope, _ int) bool {
					return p.Context == x.Context && (p.Source == x.Source || p.Source == Any)
				}
			}
			got, want := q.RemovePosted(match), ref.removePosted(match)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: RemovePosted = %v; want %v", step, got, want)
			}
		}
		if p, u := q.Len(); p != len(ref.posted) || u != len(ref.unexp) {
			t.Fatalf("step %d: Len() = %d, %d; want %d, %d", step, p, u, len(ref.posted), len(ref.unexp))
		}
		if err := q.checkInvariants(); err != nil {
			t.Fatalf("step %d: broken invariant: %v", step, err)
		}
	}
}
