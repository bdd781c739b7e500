package match

import (
	"fmt"
	"testing"
)

type benchReq struct{ id int }

// backlog fills q with n standing entries that do not match the benchmarked
// envelope (0, 1, 0): posted receives if posted, otherwise unexpected
// messages. sameSource puts them on the benchmarked source with other tags
// (the scanned case); otherwise they are spread over other sources.
func backlog(q *Queue[*benchReq, []byte], n int, posted, sameSource bool) {
	for i := range n {
		e := Envelope{Context: 0, Source: int32(2 + i%8), Tag: 1}
		if sameSource {
			e = Envelope{Context: 0, Source: 1, Tag: int32(1 + i)}
		}
		if posted {
			q.Post(e, &benchReq{id: -1 - i})
		} else {
			q.Arrive(e, nil)
		}
	}
}

var benchCases = []struct {
	name       string
	n          int
	sameSource bool
}{
	{"empty", 0, false},
	{"backlog=8/otherSources", 8, false},
	{"backlog=8/sameSourceOtherTags", 8, true},
	{"backlog=64/otherSources", 64, false},
}

// BenchmarkArrive measures an Arrive that finds its posted receive (the
// expected-message path); each iteration posts a receive and delivers the
// matching message, so ns/op covers one Post (queueing) plus one Arrive
// (matching).
func BenchmarkArrive(b *testing.B) {
	for _, bc := range benchCases {
		for _, wild := range []bool{false, true} {
			name := bc.name
			if wild {
				name += "/anySource"
			}
			b.Run(name, func(b *testing.B) {
				var q Queue[*benchReq, []byte]
				backlog(&q, bc.n, true, bc.sameSource)
				r := &benchReq{}
				msg := []byte("payload")
				e := Envelope{Context: 0, Source: 1, Tag: 0}
				p := e
				if wild {
					p.Source = Any
				}
				b.ReportAllocs()
				for b.Loop() {
					q.Post(p, r)
					if _, ok := q.Arrive(e, msg); !ok {
						b.Fatal("no match")
					}
				}
			})
		}
	}
}

// BenchmarkPost measures a Post that finds an unexpected message (the
// unexpected-message path); each iteration delivers a message that is stored
// and then posts the receive that takes it.
func BenchmarkPost(b *testing.B) {
	for _, bc := range benchCases {
		for _, wild := range []bool{false, true} {
			name := bc.name
			if wild {
				name += "/anySource"
			}
			b.Run(name, func(b *testing.B) {
				var q Queue[*benchReq, []byte]
				backlog(&q, bc.n, false, bc.sameSource)
				r := &benchReq{}
				msg := []byte("payload")
				e := Envelope{Context: 0, Source: 1, Tag: 0}
				p := e
				if wild {
					p.Source = Any
				}
				b.ReportAllocs()
				for b.Loop() {
					q.Arrive(e, msg)
					if _, _, ok := q.Post(p, r); !ok {
						b.Fatal("no match")
					}
				}
			})
		}
	}
}

// BenchmarkContexts measures a Post+Arrive pair while rotating over several
// communicator contexts, defeating the last-context cache.
func BenchmarkContexts(b *testing.B) {
	for _, nctx := range []int{1, 2, 16} {
		b.Run(fmt.Sprintf("contexts=%d", nctx), func(b *testing.B) {
			var q Queue[*benchReq, []byte]
			r := &benchReq{}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				e := Envelope{Context: uint32(i % nctx), Source: 1, Tag: 0}
				q.Post(e, r)
				q.Arrive(e, nil)
				i++
			}
		})
	}
}
