package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// scatterLinear: the root sends each rank its block directly (sends are
// buffered at the receiver, so it never waits for one rank before serving
// the next); the others receive theirs into own (counts and displs used on
// the root only), from any source and checked to come from root (recvFrom).
//
// Cost: (p−1)·α + (p−1)·nβ at the root (n per block).
func scatterLinear[T mpi.Numeric](k call, data, own []T, counts, displs []int, root int) error {
	p, r := k.size(), k.rank()
	if r != root {
		return recvFrom(k, own, root, stepScatter)
	}
	for i := range p {
		if i != r {
			if err := send(k, data[displs[i]:displs[i]+counts[i]], i, stepScatter); err != nil {
				return err
			}
		}
	}
	copy(own, data[displs[r]:displs[r]+counts[r]])
	return nil
}
