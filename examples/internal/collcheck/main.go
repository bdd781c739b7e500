// Command collcheck runs every collective of package collectives in a real
// gorun job and compares each result, element by element, with a serial
// computation every rank can do on its own: rank r's input element i is a
// fixed function of r and i, chosen so that the serial result is exact.
//
// It runs on the world communicator and on the communicator of
// Split(rank%2, -rank) (even and odd ranks, in reverse order), with element
// counts 0, 1, 7 and 1000, every root for the rooted collectives, and the
// operations Sum, Prod, Max, Min (float64), LAnd, LOr, LXor, BAnd, BOr,
// BXor, Sum (int32) and a non-commutative user operation (uint64). With
// -big (the default), Allreduce, Iallreduce, Bcast, Reduce and Gather also
// run on 1<<20 elements, and a 1<<20-element float64 Allreduce of inexact
// sums must be bitwise the same on every rank.
//
// On the first mismatch a rank prints a line starting with "MISMATCH" that
// names the collective, communicator, count, root, op, rank, element, got
// and want, and exits 1. On success world rank 0 prints
//
//	collcheck ok: N ranks, C checks
//
// where C is the number of checks summed over all ranks. Every rank first
// prints "pid <rank> <pid> <job>", as testprog does.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

const big = 1 << 20

var smallCounts = []int{0, 1, 7, 1000}

func main() {
	bigRuns := flag.Bool("big", true, "also run 1<<20-element Allreduce, Bcast, Reduce, Gather and the determinism check")
	flag.Parse()
	world, err := mpi.Init(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "collcheck:", err)
		os.Exit(1)
	}
	wrank = world.Rank()
	// As testprog does, so tests can check that nothing outlives the job.
	fmt.Printf("pid %d %d %s\n", wrank, os.Getpid(), os.Getenv("GORUN_JOB"))
	split, err := world.Split(world.Rank()%2, -world.Rank())
	if err != nil {
		fatal(call{coll: "Split", comm: "world"}, err)
	}
	for _, e := range []*env{{c: world, name: "world"}, {c: split, name: "split"}} {
		e.run(*bigRuns)
	}
	if err := split.Free(); err != nil {
		fatal(call{coll: "Free", comm: "split"}, err)
	}
	total := []int64{int64(checks)}
	if err := collectives.Allreduce(world, nil, total, collectives.Sum[int64]); err != nil {
		fatal(call{coll: "Allreduce", comm: "world", op: "sum of checks"}, err)
	}
	if wrank == 0 {
		fmt.Printf("collcheck ok: %d ranks, %d checks\n", world.Size(), total[0])
	}
	if err := world.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, "collcheck: finalize:", err)
		os.Exit(1)
	}
}

var (
	wrank  int // this process's rank in the world
	checks int // results compared on this rank
)

// A call names one collective call for messages.
type call struct {
	coll, comm string
	count      int
	root       int // -1: not rooted
	op         string
}

func (k call) String() string {
	s := fmt.Sprintf("%s comm=%s count=%d", k.coll, k.comm, k.count)
	if k.root >= 0 {
		s += fmt.Sprintf(" root=%d", k.root)
	}
	if k.op != "" {
		s += " op=" + k.op
	}
	return s
}

func fatal(k call, err error) {
	fmt.Printf("ERROR %v world-rank=%d: %v\n", k, wrank, err)
	os.Exit(1)
}

// same compares got with want exactly (floats by bits) and exits on the
// first difference.
func same[T comparable](e *env, k call, got, want []T) {
	checks++
	if len(got) != len(want) {
		fmt.Printf("MISMATCH %v rank=%d world-rank=%d: length %d, want %d\n", k, e.c.Rank(), wrank, len(got), len(want))
		os.Exit(1)
	}
	for i := range got {
		if !eq(got[i], want[i]) {
			fmt.Printf("MISMATCH %v rank=%d world-rank=%d index=%d: got %v, want %v\n", k, e.c.Rank(), wrank, i, got[i], want[i])
			os.Exit(1)
		}
	}
}

func eq[T comparable](a, b T) bool {
	switch x := any(a).(type) {
	case float64:
		return math.Float64bits(x) == math.Float64bits(any(b).(float64))
	}
	return a == b
}

// env is one communicator under test.
type env struct {
	c    *mpi.Comm
	name string
	seq  int // bumped per call, the same on every rank: salts the data
}

func (e *env) k(coll string, count, root int, op string) call {
	e.seq++
	return call{coll: coll, comm: e.name, count: count, root: root, op: op}
}

// data is rank r's element i for the data-moving collectives: exact in a
// float64, distinct per rank, element and call (salt), never negative.
func (e *env) data(r, i int) float64 {
	return float64(e.seq%64)*(1<<40) + float64(r)*(1<<24) + float64(i)
}

const sentinel = -1.0

func filled(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func (e *env) run(bigRuns bool) {
	p := e.c.Size()
	e.barriers()
	for _, n := range smallCounts {
		for root := range p {
			e.bcast(n, root)
			e.gather(n, root)
			e.scatter(n, root)
			e.values(n, root)
		}
		e.allgather(n)
		e.alltoall(n)
		e.loc(n)
		e.nonblocking(n)
	}
	reductions(e, floatOps())
	reductions(e, intOps())
	reductions(e, affineOps())
	if bigRuns {
		e.bcast(big, 0)
		e.bcast(big, p-1)
		e.gather(big, p-1)
		bigReductions(e, floatOps()[0])
		bigReductions(e, intOps()[5])
		e.determinism()
	}
}

func (e *env) barriers() {
	k := e.k("Barrier", 0, -1, "")
	if err := collectives.Barrier(e.c); err != nil {
		fatal(k, err)
	}
	k = e.k("Ibarrier", 0, -1, "")
	if _, err := collectives.Ibarrier(e.c).Wait(); err != nil {
		fatal(k, err)
	}
	checks += 2
}

func (e *env) bcast(n, root int) {
	for _, nb := range []bool{false, true} {
		name := "Bcast"
		if nb {
			name = "Ibcast"
		}
		if nb && n == big {
			continue
		}
		k := e.k(name, n, root, "")
		want := make([]float64, n)
		for i := range want {
			want[i] = e.data(root, i)
		}
		buf := filled(n, sentinel)
		if e.c.Rank() == root {
			copy(buf, want)
		}
		var err error
		if nb {
			_, err = collectives.Ibcast(e.c, buf, root).Wait()
		} else {
			err = collectives.Bcast(e.c, buf, root)
		}
		if err != nil {
			fatal(k, err)
		}
		same(e, k, buf, want)
	}
}

// vcount is rank j's block length in the v-forms for element count n.
func vcount(n, j int) int {
	if n == 0 {
		return j % 2
	}
	return n + j%3
}

// vlayout returns counts and displacements of p blocks stored in reverse
// rank order with a one-element gap after each, and the total length.
func vlayout(n, p int) (counts, displs []int, total int) {
	counts, displs = make([]int, p), make([]int, p)
	for j := p - 1; j >= 0; j-- {
		counts[j] = vcount(n, j)
		displs[j] = total
		total += counts[j] + 1
	}
	return counts, displs, total
}

func (e *env) gather(n, root int) {
	p, r := e.c.Size(), e.c.Rank()
	// Gather: rank j's block j.
	k := e.k("Gather", n, root, "")
	send := make([]float64, n)
	for i := range send {
		send[i] = e.data(r, i)
	}
	var recv, want []float64
	if r == root {
		recv, want = filled(p*n, sentinel), make([]float64, p*n)
		for j := range p {
			for i := range n {
				want[j*n+i] = e.data(j, i)
			}
		}
	}
	if err := collectives.Gather(e.c, send, recv, root); err != nil {
		fatal(k, err)
	}
	if r == root {
		same(e, k, recv, want)
	}
	if n == big {
		return
	}
	// Gatherv: blocks of different lengths, reversed, with gaps.
	k = e.k("Gatherv", n, root, "")
	counts, displs, total := vlayout(n, p)
	send = make([]float64, counts[r])
	for i := range send {
		send[i] = e.data(r, i)
	}
	recv, want = nil, nil
	if r == root {
		recv, want = filled(total, sentinel), filled(total, sentinel)
		for j := range p {
			for i := range counts[j] {
				want[displs[j]+i] = e.data(j, i)
			}
		}
	}
	if err := collectives.Gatherv(e.c, send, recv, counts, displs, root); err != nil {
		fatal(k, err)
	}
	if r == root {
		same(e, k, recv, want)
	}
}

func (e *env) scatter(n, root int) {
	p, r := e.c.Size(), e.c.Rank()
	k := e.k("Scatter", n, root, "")
	var send []float64
	if r == root {
		send = make([]float64, p*n)
		for j := range p {
			for i := range n {
				send[j*n+i] = e.data(j, i)
			}
		}
	}
	recv, want := filled(n, sentinel), make([]float64, n)
	for i := range want {
		want[i] = e.data(r, i)
	}
	if err := collectives.Scatter(e.c, send, recv, root); err != nil {
		fatal(k, err)
	}
	same(e, k, recv, want)

	k = e.k("Scatterv", n, root, "")
	counts, displs, total := vlayout(n, p)
	send = nil
	if r == root {
		send = filled(total, sentinel)
		for j := range p {
			for i := range counts[j] {
				send[displs[j]+i] = e.data(j, i)
			}
		}
	}
	recv, want = filled(counts[r], sentinel), make([]float64, counts[r])
	for i := range want {
		want[i] = e.data(r, i)
	}
	if err := collectives.Scatterv(e.c, send, counts, displs, recv, root); err != nil {
		fatal(k, err)
	}
	same(e, k, recv, want)
}

func (e *env) allgather(n int) {
	p, r := e.c.Size(), e.c.Rank()
	for _, nb := range []bool{false, true} {
		name := "Allgather"
		if nb {
			name = "Iallgather"
		}
		k := e.k(name, n, -1, "")
		send := make([]float64, n)
		for i := range send {
			send[i] = e.data(r, i)
		}
		recv, want := filled(p*n, sentinel), make([]float64, p*n)
		for j := range p {
			for i := range n {
				want[j*n+i] = e.data(j, i)
			}
		}
		var err error
		if nb {
			_, err = collectives.Iallgather(e.c, send, recv).Wait()
		} else {
			err = collectives.Allgather(e.c, send, recv)
		}
		if err != nil {
			fatal(k, err)
		}
		same(e, k, recv, want)
	}

	k := e.k("Allgatherv", n, -1, "")
	counts, displs, total := vlayout(n, p)
	send := make([]float64, counts[r])
	for i := range send {
		send[i] = e.data(r, i)
	}
	recv, want := filled(total, sentinel), filled(total, sentinel)
	for j := range p {
		for i := range counts[j] {
			want[displs[j]+i] = e.data(j, i)
		}
	}
	if err := collectives.Allgatherv(e.c, send, recv, counts, displs); err != nil {
		fatal(k, err)
	}
	same(e, k, recv, want)
}

func (e *env) alltoall(n int) {
	p, r := e.c.Size(), e.c.Rank()
	// code is element i of the block rank from sends to rank to.
	code := func(from, to, i int) float64 { return e.data(from, to*1024+i) }
	k := e.k("Alltoall", n, -1, "")
	send, recv, want := make([]float64, p*n), filled(p*n, sentinel), make([]float64, p*n)
	for j := range p {
		for i := range n {
			send[j*n+i] = code(r, j, i)
			want[j*n+i] = code(j, r, i)
		}
	}
	if err := collectives.Alltoall(e.c, send, recv); err != nil {
		fatal(k, err)
	}
	same(e, k, recv, want)

	// Alltoallv: rank a sends cnt(a, b) elements to rank b; sends packed in
	// rank order, receives in reverse order with gaps.
	k = e.k("Alltoallv", n, -1, "")
	cnt := func(a, b int) int { return vcount(n, a+2*b) }
	sc, sd, rc, rd := make([]int, p), make([]int, p), make([]int, p), make([]int, p)
	stot, rtot := 0, 0
	for j := range p {
		sc[j], sd[j] = cnt(r, j), stot
		stot += sc[j]
	}
	for j := p - 1; j >= 0; j-- {
		rc[j], rd[j] = cnt(j, r), rtot
		rtot += rc[j] + 1
	}
	send, recv, want = make([]float64, stot), filled(rtot, sentinel), filled(rtot, sentinel)
	for j := range p {
		for i := range sc[j] {
			send[sd[j]+i] = code(r, j, i)
		}
		for i := range rc[j] {
			want[rd[j]+i] = code(j, r, i)
		}
	}
	if err := collectives.Alltoallv(e.c, send, sc, sd, recv, rc, rd); err != nil {
		fatal(k, err)
	}
	same(e, k, recv, want)
}

// A config is what BcastValue carries.
type config struct {
	Name  string
	Vals  []int
	Table map[string]float64
}

func (e *env) values(n, root int) {
	p, r := e.c.Size(), e.c.Rank()
	k := e.k("BcastValue", n, root, "")
	mk := func(r int) config {
		c := config{Name: fmt.Sprintf("config of rank %d", r), Vals: make([]int, n), Table: map[string]float64{}}
		for i := range c.Vals {
			c.Vals[i] = int(e.data(r, i))
		}
		for i := range min(n, 7) {
			c.Table[fmt.Sprint(i)] = e.data(r, i) / 3
		}
		return c
	}
	v := config{Name: "stale"}
	if r == root {
		v = mk(root)
	}
	if err := collectives.BcastValue(e.c, &v, root); err != nil {
		fatal(k, err)
	}
	checks++
	if want := mk(root); !reflect.DeepEqual(normal(v), normal(want)) {
		fmt.Printf("MISMATCH %v rank=%d world-rank=%d: got %+v, want %+v\n", k, r, wrank, v, want)
		os.Exit(1)
	}

	k = e.k("GatherValue", n, root, "")
	str := func(r int) string { return fmt.Sprintf("rank %d says %v", r, e.data(r, n)) }
	got, err := collectives.GatherValue(e.c, str(r), root)
	if err != nil {
		fatal(k, err)
	}
	var want []string
	if r == root {
		for j := range p {
			want = append(want, str(j))
		}
	}
	same(e, k, got, want)
}

// normal makes empty and nil slices and maps compare equal.
func normal(c config) config {
	if len(c.Vals) == 0 {
		c.Vals = nil
	}
	if len(c.Table) == 0 {
		c.Table = nil
	}
	return c
}

func (e *env) loc(n int) {
	p, r := e.c.Size(), e.c.Rank()
	// Few distinct values, so ties (broken by the smaller index) are common.
	val := func(r, i int) float64 { return float64((r*5+i*3)%4) - 1.5 }
	send := make([]collectives.Loc[float64], n)
	for i := range send {
		send[i] = collectives.Loc[float64]{Val: val(r, i), Idx: int32(r)}
	}
	for _, o := range []struct {
		name   string
		op     collectives.LocOp[float64]
		better func(a, b float64) bool
	}{
		{"minloc", collectives.MinLoc[float64], func(a, b float64) bool { return a < b }},
		{"maxloc", collectives.MaxLoc[float64], func(a, b float64) bool { return a > b }},
	} {
		want := make([]collectives.Loc[float64], n)
		for i := range want {
			want[i] = collectives.Loc[float64]{Val: val(0, i), Idx: 0}
			for j := 1; j < p; j++ {
				if o.better(val(j, i), want[i].Val) {
					want[i] = collectives.Loc[float64]{Val: val(j, i), Idx: int32(j)}
				}
			}
		}
		k := e.k("AllreduceLoc", n, -1, o.name)
		recv := make([]collectives.Loc[float64], n)
		if err := collectives.AllreduceLoc(e.c, send, recv, o.op); err != nil {
			fatal(k, err)
		}
		same(e, k, recv, want)
		for root := range p {
			k := e.k("ReduceLoc", n, root, o.name)
			var recv []collectives.Loc[float64]
			if r == root {
				recv = make([]collectives.Loc[float64], n)
			}
			if err := collectives.ReduceLoc(e.c, send, recv, o.op, root); err != nil {
				fatal(k, err)
			}
			if r == root {
				same(e, k, recv, want)
			}
		}
	}
}

// nonblocking starts an Ibarrier, an Ibcast from the last rank and an
// Iallreduce at once, then waits for them in reverse order.
func (e *env) nonblocking(n int) {
	p, r := e.c.Size(), e.c.Rank()
	k := e.k("Ibarrier+Ibcast+Iallreduce", n, p-1, "sum")
	bc := filled(n, sentinel)
	wantBc := make([]float64, n)
	for i := range n {
		wantBc[i] = e.data(p-1, i)
	}
	if r == p-1 {
		copy(bc, wantBc)
	}
	ops := floatOps()[0]
	send, sum := input(ops.gen, r, n), filled(n, sentinel)
	reqs := []*mpi.Request{
		collectives.Ibarrier(e.c),
		collectives.Ibcast(e.c, bc, p-1),
		collectives.Iallreduce(e.c, send, sum, ops.op),
	}
	for _, q := range slices.Backward(reqs) {
		if _, err := q.Wait(); err != nil {
			fatal(k, err)
		}
	}
	same(e, k, bc, wantBc)
	same(e, k, sum, serial(ops, 0, p, n))
}

// An opCase is an operation with an independent scalar form (lo ⊕ hi, lo
// from the lower ranks) and an input generator keeping results exact.
type opCase[T mpi.Numeric] struct {
	name string
	op   collectives.Op[T]
	f    func(lo, hi T) T
	gen  func(r, i int) T
}

func floatOps() []opCase[float64] {
	return []opCase[float64]{
		{"sum", collectives.Sum[float64], func(a, b float64) float64 { return a + b },
			func(r, i int) float64 { return float64((r*7+i*3)%11 - 5) }},
		{"prod", collectives.Prod[float64], func(a, b float64) float64 { return a * b },
			func(r, i int) float64 { return []float64{1, 2, -1, 0.5, -2}[(r+i)%5] }},
		{"max", collectives.Max[float64], func(a, b float64) float64 { return max(a, b) },
			func(r, i int) float64 { return float64((r*13+i*7)%17 - 8) }},
		{"min", collectives.Min[float64], func(a, b float64) float64 { return min(a, b) },
			func(r, i int) float64 { return float64((r*13+i*5)%19 - 9) }},
	}
}

func intOps() []opCase[int32] {
	b := func(x bool) int32 {
		if x {
			return 1
		}
		return 0
	}
	// Logical inputs: mostly non-zero, with zeros at a few ranks per element.
	logical := func(r, i int) int32 { return int32((r*5+i)%3) * int32(1+(r+i)%2) }
	sparse := func(r, i int) int32 { return int32((r*i+r+i)%5/4) * 7 }
	bits := func(r, i int) int32 { return int32(uint32(r+1)*2654435761 ^ uint32(i)*40503) }
	return []opCase[int32]{
		{"land", collectives.LAnd[int32], func(a, c int32) int32 { return b(a != 0 && c != 0) }, logical},
		{"lor", collectives.LOr[int32], func(a, c int32) int32 { return b(a != 0 || c != 0) }, sparse},
		{"lxor", collectives.LXor[int32], func(a, c int32) int32 { return b((a != 0) != (c != 0)) }, logical},
		{"band", collectives.BAnd[int32], func(a, c int32) int32 { return a & c }, bits},
		{"bor", collectives.BOr[int32], func(a, c int32) int32 { return a | c }, bits},
		{"bxor", collectives.BXor[int32], func(a, c int32) int32 { return a ^ c }, bits},
		{"isum", collectives.Sum[int32], func(a, c int32) int32 { return a + c }, bits},
	}
}

// affine is a non-commutative, associative user operation: x = a<<32 | b
// stands for the map v ↦ a·v + b (mod 2³²); in ⊕ inout applies in first.
func affine(inout, in []uint64) {
	for i := range inout {
		inout[i] = compose(in[i], inout[i])
	}
}

func compose(first, then uint64) uint64 {
	a1, b1 := uint32(first>>32), uint32(first)
	a2, b2 := uint32(then>>32), uint32(then)
	return uint64(a2*a1)<<32 | uint64(a2*b1+b2)
}

func affineOps() []opCase[uint64] {
	return []opCase[uint64]{{"affine", affine, compose, func(r, i int) uint64 {
		return uint64(2*(r*3+i)+1)<<32 | uint64(r*1000+i+1)
	}}}
}

func input[T mpi.Numeric](gen func(r, i int) T, r, n int) []T {
	v := make([]T, n)
	for i := range v {
		v[i] = gen(r, i)
	}
	return v
}

// serial is x_lo ⊕ … ⊕ x_{hi-1} computed element by element with the
// scalar form; nil for an empty range.
func serial[T mpi.Numeric](o opCase[T], lo, hi, n int) []T {
	if lo >= hi {
		return nil
	}
	acc := input(o.gen, lo, n)
	for r := lo + 1; r < hi; r++ {
		for i := range acc {
			acc[i] = o.f(acc[i], o.gen(r, i))
		}
	}
	return acc
}

// blocks splits n elements over p ranks, the first n%p one longer.
func blocks(n, p int) []int {
	c := make([]int, p)
	for j := range c {
		c[j] = n / p
		if j < n%p {
			c[j]++
		}
	}
	return c
}

// reductions checks Reduce (every root), Allreduce (and in place),
// Iallreduce, Ireduce, Scan, Exscan and ReduceScatter for every op and
// small count.
func reductions[T mpi.Numeric](e *env, ops []opCase[T]) {
	p, r := e.c.Size(), e.c.Rank()
	for _, o := range ops {
		for _, n := range smallCounts {
			send := input(o.gen, r, n)
			all := serial(o, 0, p, n)

			k := e.k("Allreduce", n, -1, o.name)
			recv := make([]T, n)
			if err := collectives.Allreduce(e.c, send, recv, o.op); err != nil {
				fatal(k, err)
			}
			same(e, k, recv, all)

			k = e.k("Allreduce(in place)", n, -1, o.name)
			recv = slices.Clone(send)
			if err := collectives.Allreduce(e.c, nil, recv, o.op); err != nil {
				fatal(k, err)
			}
			same(e, k, recv, all)

			k = e.k("Iallreduce", n, -1, o.name)
			recv = make([]T, n)
			if _, err := collectives.Iallreduce(e.c, send, recv, o.op).Wait(); err != nil {
				fatal(k, err)
			}
			same(e, k, recv, all)

			for root := range p {
				for _, nb := range []bool{false, true} {
					name := "Reduce"
					if nb {
						name = "Ireduce"
					}
					k := e.k(name, n, root, o.name)
					var recv []T
					if r == root {
						recv = make([]T, n)
					}
					var err error
					if nb {
						_, err = collectives.Ireduce(e.c, send, recv, o.op, root).Wait()
					} else {
						err = collectives.Reduce(e.c, send, recv, o.op, root)
					}
					if err != nil {
						fatal(k, err)
					}
					if r == root {
						same(e, k, recv, all)
					}
				}
			}

			k = e.k("Scan", n, -1, o.name)
			recv = make([]T, n)
			if err := collectives.Scan(e.c, send, recv, o.op); err != nil {
				fatal(k, err)
			}
			same(e, k, recv, serial(o, 0, r+1, n))

			k = e.k("Exscan", n, -1, o.name)
			recv = make([]T, n)
			var mark T = 3 // rank 0's recv is left as it is
			for i := range recv {
				recv[i] = mark
			}
			if err := collectives.Exscan(e.c, send, recv, o.op); err != nil {
				fatal(k, err)
			}
			want := serial(o, 0, r, n)
			if r == 0 {
				want = slices.Clone(recv)
				for i := range want {
					want[i] = mark
				}
			}
			same(e, k, recv, want)

			k = e.k("ReduceScatter", n, -1, o.name)
			counts := blocks(n, p)
			off := 0
			for j := range r {
				off += counts[j]
			}
			recv = make([]T, counts[r])
			if err := collectives.ReduceScatter(e.c, send, recv, counts, o.op); err != nil {
				fatal(k, err)
			}
			same(e, k, recv, all[off:off+counts[r]])
		}
	}
}

// bigReductions checks Allreduce, Iallreduce and Reduce (to the first and
// last rank) of 1<<20 elements.
func bigReductions[T mpi.Numeric](e *env, o opCase[T]) {
	p, r := e.c.Size(), e.c.Rank()
	send := input(o.gen, r, big)
	all := serial(o, 0, p, big)
	k := e.k("Allreduce", big, -1, o.name)
	recv := make([]T, big)
	if err := collectives.Allreduce(e.c, send, recv, o.op); err != nil {
		fatal(k, err)
	}
	same(e, k, recv, all)
	k = e.k("Iallreduce", big, -1, o.name)
	clear(recv)
	if _, err := collectives.Iallreduce(e.c, send, recv, o.op).Wait(); err != nil {
		fatal(k, err)
	}
	same(e, k, recv, all)
	for _, root := range []int{0, p - 1} {
		k := e.k("Reduce", big, root, o.name)
		var recv []T
		if r == root {
			recv = make([]T, big)
		}
		if err := collectives.Reduce(e.c, send, recv, o.op, root); err != nil {
			fatal(k, err)
		}
		if r == root {
			same(e, k, recv, all)
		}
	}
}

// determinism: a 1<<20-element float64 Sum of values whose sums round must
// be bitwise the same on every rank (and in a second call), and close to
// the serial sum. The ranks compare a hash of their result with Allreduce
// Max and Min.
func (e *env) determinism() {
	p, r := e.c.Size(), e.c.Rank()
	send := make([]float64, big)
	for i := range send {
		send[i] = 0.1*float64(r+1) + 1e-3*float64(i) + 1.0/3
	}
	var first uint64
	for rep := range 2 {
		k := e.k("Allreduce(determinism)", big, -1, "sum")
		recv := make([]float64, big)
		if err := collectives.Allreduce(e.c, send, recv, collectives.Sum[float64]); err != nil {
			fatal(k, err)
		}
		h := uint64(14695981039346656037) // FNV-1a over the result's bits
		for i, v := range recv {
			var want float64
			for j := range p {
				want += 0.1*float64(j+1) + 1e-3*float64(i) + 1.0/3
			}
			if math.Abs(v-want) > 1e-9*math.Abs(want) {
				fmt.Printf("MISMATCH %v rank=%d world-rank=%d index=%d: got %v, want about %v\n", k, r, wrank, i, v, want)
				os.Exit(1)
			}
			h = (h ^ math.Float64bits(v)) * 1099511628211
		}
		hs := []uint64{h, h}
		lo, hi := make([]uint64, 1), make([]uint64, 1)
		if err := collectives.Allreduce(e.c, hs[:1], hi, collectives.Max[uint64]); err != nil {
			fatal(k, err)
		}
		if err := collectives.Allreduce(e.c, hs[1:], lo, collectives.Min[uint64]); err != nil {
			fatal(k, err)
		}
		checks++
		if lo[0] != hi[0] {
			fmt.Printf("MISMATCH %v rank=%d world-rank=%d: result differs between ranks: hashes from %016x to %016x, this rank %016x\n", k, r, wrank, lo[0], hi[0], h)
			os.Exit(1)
		}
		if rep == 0 {
			first = h
		} else if h != first {
			fmt.Printf("MISMATCH %v rank=%d world-rank=%d: second call's hash %016x differs from the first's %016x\n", k, r, wrank, h, first)
			os.Exit(1)
		}
	}
}
