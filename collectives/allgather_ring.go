package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// allgatherRing is the ring allgather. Ring position i is rank i+shift
// (mod p) and owns block i, buf[block(i)]; in step s (0 … p−2) every rank
// passes the block it received last (its own at first) to its right
// neighbour and receives the next one from its left. Blocks may differ in
// size (Allgatherv); each is received with its exact length.
//
// Cost: (p−1)·α + (p−1)/p·nβ (n the total, for equal blocks).
func allgatherRing[T mpi.Numeric](k call, buf []T, shift int, block func(i int) (lo, hi int), step int) error {
	p, r := k.size(), k.rank()
	i := (r - shift + p) % p
	right, left := (r+1)%p, (r-1+p)%p
	for s := range p - 1 {
		slo, shi := block((i - s + p) % p)
		rlo, rhi := block((i - s - 1 + p) % p)
		if err := sendrecv(k, buf[slo:shi], right, buf[rlo:rhi], left, step); err != nil {
			return err
		}
	}
	return nil
}
