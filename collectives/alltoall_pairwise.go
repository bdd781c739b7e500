package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// alltoallPairwise is the pairwise-exchange alltoall: in step s (1 … p−1)
// rank r sends its block for r+s and receives the block of r−s (mod p), so
// every rank talks to one peer at a time and each pair exchanges once. The
// own block is copied locally.
//
// Cost: (p−1)·(α + nβ) (n per block).
func alltoallPairwise[T mpi.Numeric](k call, send []T, sc, sd []int, recv []T, rc, rd []int) error {
	p, r := k.size(), k.rank()
	copy(recv[rd[r]:rd[r]+rc[r]], send[sd[r]:sd[r]+sc[r]])
	for s := 1; s < p; s++ {
		dst, src := (r+s)%p, (r-s+p)%p
		if err := sendrecv(k, send[sd[dst]:sd[dst]+sc[dst]], dst, recv[rd[src]:rd[src]+rc[src]], src, stepAlltoall); err != nil {
			return err
		}
	}
	return nil
}
