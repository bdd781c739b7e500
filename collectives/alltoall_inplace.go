package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// alltoallInPlace is the in-place alltoall (MPI_IN_PLACE): buf holds the
// block for each rank, at buf[displs[j] : +counts[j]] for rank j, and each
// block is replaced by the one rank j sends back. In step s (0 … p−1) rank
// r pairs with j = s − r (mod p), a symmetric pairing (j's partner in step
// s is r), and the two swap their blocks for each other with one
// Sendrecv on the same slice (mpi.Sendrecv sends the block before the
// reply lands on it); the rank paired with itself keeps its block. Every
// pair swaps once, and no scratch is needed. A rank's count for j must
// equal j's count for it, else ErrMismatch.
//
// Cost: (p−1)·(α + nβ) (n per block), p−1 of the p steps doing a swap;
// the same as the pairwise exchange.
func alltoallInPlace[T mpi.Numeric](k call, buf []T, counts, displs []int) error {
	p, r := k.size(), k.rank()
	for s := range p {
		j := ((s-r)%p + p) % p
		if j == r {
			continue
		}
		block := buf[displs[j] : displs[j]+counts[j]]
		if err := sendrecv(k, block, j, block, j, stepAlltoall); err != nil {
			return err
		}
	}
	return nil
}
