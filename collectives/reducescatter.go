package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// ReduceScatter combines the send buffers of all ranks with op, in rank
// order, and scatters the result (MPI_Reduce_scatter): rank i receives
// elements [counts₀+…+countsᵢ₋₁, +countsᵢ) of send₀ ⊕ … ⊕ sendₚ₋₁ into recv.
// counts is the same on every rank; len(send) = Σ counts and len(recv) =
// counts[Rank()]. send is not modified; the buffers must not overlap and
// must not be touched by other goroutines during the call.
//
// In-place form (MPI_IN_PLACE): send == nil means recv holds this rank's
// whole input, len(recv) = Σ counts; the result goes to recv[:counts[Rank()]]
// and the rest of recv is left with unspecified contents. Ranks may choose
// the form independently.
//
// Algorithms: for the package's commutative ops, the ring reduce-scatter
// (allreduce_ring.go); for other ops, which it must combine in rank order,
// a binomial reduce to rank 0 followed by a linear scatter
// (reducescatter_reduce.go).
func ReduceScatter[T mpi.Numeric](c *mpi.Comm, send, recv []T, counts []int, op Op[T]) error {
	const name = "reduce scatter"
	if err := checkComm(name, c); err != nil {
		return err
	}
	if op == nil {
		return countErr(name, "nil op")
	}
	p, r := c.Size(), c.Rank()
	if len(counts) != p {
		return countErr(name, "%d counts for %d ranks", len(counts), p)
	}
	displs := make([]int, p)
	total := 0
	for i, n := range counts {
		if n < 0 {
			return countErr(name, "counts[%d] = %d", i, n)
		}
		displs[i] = total
		total += n
	}
	in, out := send, recv
	if send == nil {
		if len(recv) != total {
			return countErr(name, "in-place recv has %d elements; counts want %d", len(recv), total)
		}
		in, out = recv, recv[:counts[r]]
	} else if len(send) != total || len(recv) != counts[r] {
		return countErr(name, "send has %d elements and recv %d; counts want %d and %d", len(send), len(recv), total, counts[r])
	}
	if p == 1 {
		copy(out, in)
		return nil
	}
	k := newCall(c)
	if commutative(op) {
		work := in
		if send != nil {
			work = make([]T, total)
			copy(work, send)
		}
		block := func(i int) (int, int) { return displs[i], displs[i] + counts[i] }
		if err := reduceScatterRing(k, work, op, block); err != nil {
			return wrap(name, err)
		}
		copy(out, work[displs[r]:displs[r]+counts[r]]) // memmove: may overlap in place
		return nil
	}
	// reduceScatterReduce has read all of in before its scatter writes out.
	return wrap(name, reduceScatterReduce(k, in, out, counts, displs, op))
}
