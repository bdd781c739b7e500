package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// bcastScatterAllgather is van de Geijn's broadcast for long messages: buf
// is cut into p nearly equal blocks, block j belonging to virtual rank j
// (v = r − root mod p); the root scatters the blocks down a binomial tree
// (each rank receives the blocks of its subtree once), then a ring
// allgather over the virtual ranks completes every copy. The binomial
// scatter uses the binomial broadcast's tree and tag, so a rank that took
// the other algorithm (its length differs) sees a size mismatch.
//
// Cost: (⌈lg p⌉ + p − 1)·α + 2·(p−1)/p·nβ, against ⌈lg p⌉·nβ for the tree.
func bcastScatterAllgather[T mpi.Numeric](k call, buf []T, root int) error {
	p, n := k.size(), len(buf)
	off := func(v int) int { return blockStart(n, p, v) }
	if err := scatterBinomial(k, buf, 0, root, off, stepBcast); err != nil {
		return err
	}
	return allgatherRing(k, buf, root, func(i int) (int, int) { return off(i), off(i + 1) }, stepBcastAllgather)
}
