// Command sort sorts numbers spread over the ranks with a parallel sample
// sort: the ranks agree on splitters from a sample, every rank sends each
// number to the rank whose range holds it (Alltoallv), and each sorts what
// it received. Rank r then holds the r-th part of the sorted sequence.
//
//	gorun -n 4 ./examples/sort -count 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

func main() {
	count := flag.Int("count", 1_000_000, "numbers per rank (each rank has a few more or fewer)")
	flag.Parse()
	if err := run(*count); err != nil {
		fmt.Fprintln(os.Stderr, "sort:", err)
		os.Exit(1)
	}
}

func run(count int) error {
	world, err := mpi.Init(context.Background())
	if err != nil {
		return err
	}
	data := input(world.Rank(), count)
	start := mpi.Wtime()
	sorted, err := sampleSort(world, data)
	elapsed := mpi.Wtime() - start
	if err == nil {
		err = verify(world, data, sorted)
	}
	if err != nil {
		return world.Abort(1, "sort: "+err.Error())
	}
	sizes := make([]int, world.Size())
	if err := collectives.Allgather(world, []int{len(sorted)}, sizes); err != nil {
		return err
	}
	if world.Rank() == 0 {
		fmt.Printf("sorted %d numbers on %d ranks in %.3f s (checked: in order, same numbers)\n",
			sum(sizes), world.Size(), elapsed)
		fmt.Printf("numbers per rank after the sort: %v\n", sizes)
	}
	return world.Finalize()
}

// input returns rank's numbers: count of them, give or take a few, so that
// the ranks start with different amounts.
func input(rank, count int) []int64 {
	rng := rand.New(rand.NewPCG(uint64(rank), 42))
	data := make([]int64, max(count+rank*7%11-5, 0))
	for i := range data {
		data[i] = rng.Int64N(1_000_000_000)
	}
	return data
}

// sampleSort returns this rank's part of the sorted union of every rank's
// data: all of it at least the previous rank's part, at most the next's.
// data is not modified.
func sampleSort(c *mpi.Comm, data []int64) ([]int64, error) {
	p := c.Size()
	local := slices.Clone(data)
	slices.Sort(local)

	// 1. Each rank picks p regularly spaced samples of its sorted data; all
	// ranks gather all p·p samples and pick the same p−1 splitters from them.
	samples := make([]int64, p)
	for j := range samples {
		if len(local) == 0 {
			samples[j] = 1<<63 - 1 // no data: sample the top, to stay out of the way
		} else {
			samples[j] = local[j*len(local)/p]
		}
	}
	all := make([]int64, p*p)
	if err := collectives.Allgather(c, samples, all); err != nil {
		return nil, err
	}
	slices.Sort(all)
	splitters := make([]int64, p-1)
	for j := range splitters {
		splitters[j] = all[(j+1)*p]
	}

	// 2. Partition: rank j gets the numbers x with splitters[j−1] ≤ x <
	// splitters[j]. local is sorted, so each part is one run of it.
	sendCounts, sendDispls := make([]int, p), make([]int, p)
	lo := 0
	for j := range p {
		hi := len(local)
		if j < p-1 {
			hi, _ = slices.BinarySearch(local, splitters[j]) // first x ≥ splitter
			hi = max(hi, lo)
		}
		sendDispls[j], sendCounts[j] = lo, hi-lo
		lo = hi
	}

	// 3. Tell every rank how much it will get from us (Alltoall), then send
	// the numbers themselves (Alltoallv).
	recvCounts := make([]int, p)
	if err := collectives.Alltoall(c, sendCounts, recvCounts); err != nil {
		return nil, err
	}
	recvDispls := make([]int, p)
	for j := 1; j < p; j++ {
		recvDispls[j] = recvDispls[j-1] + recvCounts[j-1]
	}
	out := make([]int64, sum(recvCounts))
	if err := collectives.Alltoallv(c, local, sendCounts, sendDispls, out, recvCounts, recvDispls); err != nil {
		return nil, err
	}

	// 4. Each rank sorts what it received: p sorted runs.
	slices.Sort(out)
	return out, nil
}

// verify checks, collectively, that sorted is this rank's part of a sorted
// permutation of the union of every rank's data: each part is in order, no
// part starts below the previous part's end, and the count and a
// order-independent checksum of the numbers are unchanged.
func verify(c *mpi.Comm, data, sorted []int64) error {
	if !slices.IsSorted(sorted) {
		return fmt.Errorf("rank %d: part not in order", c.Rank())
	}
	// Ends of every part; an empty part takes its neighbour's to keep the check simple.
	ends := []int64{1<<63 - 1, -1 << 63}
	if len(sorted) > 0 {
		ends = []int64{sorted[0], sorted[len(sorted)-1]}
	}
	all := make([]int64, 2*c.Size())
	if err := collectives.Allgather(c, ends, all); err != nil {
		return err
	}
	last := int64(-1 << 63)
	for r := range c.Size() {
		if all[2*r] > all[2*r+1] { // empty part
			continue
		}
		if all[2*r] < last {
			return fmt.Errorf("rank %d's part starts at %d, below the end of an earlier part, %d", r, all[2*r], last)
		}
		last = all[2*r+1]
	}
	// Counts and checksums before and after; the checksum is a sum of hashes,
	// wrapping around, so order does not matter but a changed number does.
	local := []uint64{uint64(len(data)), checksum(data), uint64(len(sorted)), checksum(sorted)}
	tot := make([]uint64, 4)
	if err := collectives.Allreduce(c, local, tot, collectives.Sum); err != nil {
		return err
	}
	if tot[0] != tot[2] || tot[1] != tot[3] {
		return fmt.Errorf("the sorted numbers are not the input's: %d numbers in, %d out", tot[0], tot[2])
	}
	return nil
}

func checksum(xs []int64) uint64 {
	var s uint64
	for _, x := range xs {
		h := uint64(x) * 0x9e3779b97f4a7c15 // mix the bits (splitmix64's finaliser)
		h ^= h >> 31
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 29
		s += h
	}
	return s
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}
