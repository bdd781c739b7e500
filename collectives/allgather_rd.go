package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// allgatherRD is the recursive-doubling allgather for a power-of-two rank
// count: in round j rank r holds the 2ʲ blocks of its aligned group
// r &^ (2ʲ−1) …, exchanges them with rank r ⊕ 2ʲ, which holds the adjacent
// group, and so doubles what it holds. buf holds p blocks of n, this rank's
// already in place.
//
// Cost: lg p·α + (p−1)·nβ (n per block).
func allgatherRD[T mpi.Numeric](k call, buf []T, n int) error {
	p, r := k.size(), k.rank()
	for mask := 1; mask < p; mask <<= 1 {
		dst := r ^ mask
		mine, theirs := r&^(mask-1), dst&^(mask-1)
		if err := sendrecv(k, buf[mine*n:(mine+mask)*n], dst, buf[theirs*n:(theirs+mask)*n], dst, stepAllgather); err != nil {
			return err
		}
	}
	return nil
}
