package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// allreduceRing is the bandwidth-optimal ring allreduce: a ring
// reduce-scatter leaves block r of the vector (p nearly equal blocks)
// fully reduced on rank r, then a ring allgather (allgather_ring.go) copies
// every block everywhere. It needs no power of two.
//
// Order: block b is reduced once along the fixed path b+1, b+2, …, b (mod
// p), each rank adding its own contribution after the partial it received,
// then copied: results are bitwise identical on all ranks and reproducible,
// but the path wraps from rank p−1 to rank 0, so the op must be
// commutative. The dispatcher uses it only for the package's own ops.
//
// Cost: 2·(p−1)·α + 2·(p−1)/p·nβ + (p−1)/p·nγ.
func allreduceRing[T mpi.Numeric](k call, buf []T, op Op[T]) error {
	n, p := len(buf), k.size()
	block := func(i int) (int, int) { return blockStart(n, p, i), blockStart(n, p, i+1) }
	if err := reduceScatterRing(k, buf, op, block); err != nil {
		return err
	}
	return allgatherRing(k, buf, 0, block, stepAG)
}

// reduceScatterRing leaves on each rank r the full reduction of block r,
// buf[block(r)]; the other blocks of buf are left partially reduced. In step
// s (0 … p−2) rank r sends block r−s−1 (its own contribution at first,
// then the partial it just combined) to its right neighbour and combines
// block r−s−2 received from its left as the in operand. Commutative ops
// only (see allreduceRing).
//
// Cost: (p−1)·α + (p−1)/p·nβ + (p−1)/p·nγ.
func reduceScatterRing[T mpi.Numeric](k call, buf []T, op Op[T], block func(i int) (lo, hi int)) error {
	p, r := k.size(), k.rank()
	right, left := (r+1)%p, (r-1+p)%p
	longest := 0
	for i := range p {
		lo, hi := block(i)
		longest = max(longest, hi-lo)
	}
	tmp, sc := getScratch[T](longest)
	defer putScratch(sc)
	for s := range p - 1 {
		slo, shi := block(((r-s-1)%p + p) % p)
		rlo, rhi := block(((r-s-2)%p + p) % p)
		in := tmp[:rhi-rlo]
		if err := sendrecv(k, buf[slo:shi], right, in, left, stepRD); err != nil {
			return err
		}
		op(buf[rlo:rhi], in)
	}
	return nil
}
