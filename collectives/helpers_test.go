package collectives

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

var (
	rankCounts = []int{1, 2, 3, 4, 5, 7, 8}
	elemCounts = []int{0, 1, 7, 1000}
)

// The 1<<20-element case (bigCounts) runs, to keep the package's tests
// within a minute under -race on two cores, on a subset of the matrix only:
// the rank counts bigRankCounts (one rank, and five, which the algorithms
// fold to four and Split cuts into three and two) and, for rooted
// collectives, the root p−1 (a non-zero root), on the world communicator
// only. Tests pass it with their ops reduced to
// one or two; the data-movement tests make it the total (see perRank).
const bigCount = 1 << 20

var bigRankCounts = []int{1, 5}

// skipBig reports whether the case (n ranks, count elements, root) is
// outside the subset that runs the 1<<20-element count.
func skipBig(n, count, root int) bool {
	return count >= bigCount && (!slices.Contains(bigRankCounts, n) || root != n-1)
}

// An opCase is an operation under test with an input generator whose
// values keep the serial result exact (small integers in floats).
type opCase[T mpi.Numeric] struct {
	name string
	op   Op[T]
	gen  func(rank, i int) T
}

func floatCases() []opCase[float64] {
	return []opCase[float64]{
		{"sum", Sum[float64], func(r, i int) float64 { return float64((r*7+i*3)%11 - 5) }},
		{"prod", Prod[float64], func(r, i int) float64 { return []float64{1, 2, -1, 0.5}[(r+i)%4] }},
		{"max", Max[float64], func(r, i int) float64 { return float64((r*13+i*7)%17 - 8) }},
		{"min", Min[float64], func(r, i int) float64 { return float64((r*13+i*5)%19 - 9) }},
	}
}

func intCases() []opCase[int32] {
	logical := func(r, i int) int32 { return int32((r*5 + i) % 3) }
	bits := func(r, i int) int32 { return int32(uint32(r+1)*2654435761 ^ uint32(i)*40503) }
	return []opCase[int32]{
		{"land", LAnd[int32], func(r, i int) int32 { return int32(min(1, (r+i)%5)) * logical(r, i) }},
		{"lor", LOr[int32], func(r, i int) int32 { return int32((r*i+r)%4/3) * logical(r, i) }},
		{"lxor", LXor[int32], logical},
		{"band", BAnd[int32], bits},
		{"bor", BOr[int32], bits},
		{"bxor", BXor[int32], bits},
		{"isum", Sum[int32], bits},
	}
}

// affine is a non-commutative, associative op: each uint64 packs the map
// x ↦ a·x + b (mod 2³²) as a<<32 | b, and in ⊕ inout applies in first.
func affine(inout, in []uint64) {
	for i := range inout {
		a1, b1 := uint32(in[i]>>32), uint32(in[i])
		a2, b2 := uint32(inout[i]>>32), uint32(inout[i])
		inout[i] = uint64(a2*a1)<<32 | uint64(a2*b1+b2)
	}
}

func affineCases() []opCase[uint64] {
	return []opCase[uint64]{{"affine", affine, func(r, i int) uint64 {
		return uint64(2*(r*3+i)+1)<<32 | uint64(r*1000+i+1)
	}}}
}

// input returns rank r's input of count elements.
func input[T mpi.Numeric](gen func(r, i int) T, r, count int) []T {
	v := make([]T, count)
	for i := range v {
		v[i] = gen(r, i)
	}
	return v
}

// serial folds the inputs of ranks lo … hi-1 in rank order.
func serial[T mpi.Numeric](gen func(r, i int) T, op Op[T], lo, hi, count int) []T {
	acc := input(gen, lo, count)
	for r := lo + 1; r < hi; r++ {
		x := input(gen, r, count)
		op(x, acc)
		acc = x
	}
	return acc
}

// same compares got with want, naming the call in the error.
func same[T comparable](call string, got, want []T) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: len = %d; want %d", call, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("%s[%d] = %v; want %v", call, i, got[i], want[i])
		}
	}
	return nil
}

// comms names the communicators every case runs on.
var comms = []string{"world", "split"}

// run runs fn on n goroutine ranks, on the world or on the communicator of
// Split(rank%2, rank).
func run(t *testing.T, n int, comm string, fn func(c *mpi.Comm) error) {
	t.Helper()
	mpitest.Run(t, n, abortOnError(func(w *mpi.Comm) error {
		if comm == "world" {
			return fn(w)
		}
		s, err := w.Split(w.Rank()%2, w.Rank())
		if err != nil {
			return err
		}
		defer s.Free()
		return fn(s)
	}))
}

// abortOnError makes a failing rank abort the in-process job, so that ranks
// still waiting for it fail with mpi.ErrAborted instead of hanging: mpitest
// cancels the job only after the failed rank's Finalize, which waits for
// them. The rank's own error is returned (mpitest reports it as the cause).
func abortOnError(fn func(c *mpi.Comm) error) func(c *mpi.Comm) error {
	return func(c *mpi.Comm) error {
		err := fn(c)
		if err != nil && !errors.Is(err, mpi.ErrAborted) {
			_ = c.Abort(1, err.Error()) // returns ErrAborted in-process; err is the one to report
		}
		return err
	}
}

// cases calls body for every rank count, element count, op (by index in
// ops; nil ops means one unnamed case) and communicator, in a subtest named
// after them: n=3/count=7/op=max/comm=split.
func cases(t *testing.T, counts []int, ops []string, body func(t *testing.T, n, count, op int, comm string)) {
	for _, n := range rankCounts {
		for _, count := range counts {
			if skipBig(n, count, n-1) {
				continue
			}
			for o, name := range opNames(ops) {
				for _, comm := range comms {
					if count >= bigCount && comm != "world" {
						continue
					}
					t.Run(fmt.Sprintf("n=%d/count=%d%s/comm=%s", n, count, name, comm), func(t *testing.T) {
						body(t, n, count, o, comm)
					})
				}
			}
		}
	}
}

// rootCases is cases with every root of the world communicator too (on the
// split communicator the root is taken mod its size):
// n=3/count=7/root=2/op=max/comm=world.
func rootCases(t *testing.T, counts []int, ops []string, body func(t *testing.T, n, count, root, op int, comm string)) {
	for _, n := range rankCounts {
		for _, count := range counts {
			for root := range n {
				if skipBig(n, count, root) {
					continue
				}
				for o, name := range opNames(ops) {
					for _, comm := range comms {
						if count >= bigCount && comm != "world" {
							continue
						}
						t.Run(fmt.Sprintf("n=%d/count=%d/root=%d%s/comm=%s", n, count, root, name, comm), func(t *testing.T) {
							body(t, n, count, root, o, comm)
						})
					}
				}
			}
		}
	}
}

func opNames(ops []string) []string {
	if ops == nil {
		return []string{""}
	}
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = "/op=" + op
	}
	return names
}

func names[T mpi.Numeric](ops []opCase[T]) []string {
	var s []string
	for _, oc := range ops {
		s = append(s, oc.name)
	}
	return s
}

// bigCounts is elemCounts and bigCount (unless -short).
func bigCounts(t *testing.T) []int {
	return append(slices.Clone(elemCounts), big(t)...)
}

// big is bigCount alone (none with -short).
func big(t *testing.T) []int {
	if testing.Short() {
		return nil
	}
	return []int{bigCount}
}
