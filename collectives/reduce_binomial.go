package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// reduceBinomial reduces the ranks' inputs to root along a binomial tree.
// After step j, rank v (in tree numbering) holds the reduction of the ranks
// v … v+2ʲ⁺¹−1: it receives the partial result of the adjacent higher block
// from v+2ʲ and combines it as the inout operand (its own block, being
// lower, is in), then a rank with bit j set sends its partial to v−2ʲ and
// leaves.
//
// For an op that is not known to be commutative the tree is numbered by
// rank and rooted at rank 0, so every combination joins two adjacent blocks
// of ranks in order; rank 0 then sends the result to root (one extra
// message when root ≠ 0). For the package's commutative ops the tree is
// rooted at root itself (v = r − root mod p). Either way the brackets
// depend only on p and root, so results are reproducible.
//
// in (never modified) is this rank's input; out receives the result on
// root and may be in itself (in place). Scratch: two n-element buffers on
// ranks that receive.
//
// Cost: ⌈lg p⌉·(α + nβ + nγ) (+ α + nβ for the forward to root ≠ 0).
func reduceBinomial[T mpi.Numeric](k call, in, out []T, op Op[T], root int, commutative bool) error {
	p, r := k.size(), k.rank()
	treeRoot := 0
	if commutative {
		treeRoot = root
	}
	v := (r - treeRoot + p) % p
	acc := in // the partial result so far; in itself until the first combination
	var scratch [2][]T
	next := 0
	for mask := 1; mask < p; mask <<= 1 {
		if v&mask != 0 {
			if err := send(k, acc, (v-mask+treeRoot)%p, stepReduce); err != nil {
				return err
			}
			if r == root { // only when root ≠ treeRoot: the result comes from there
				return recv(k, out, treeRoot, stepReduceRoot)
			}
			return nil
		}
		if v+mask >= p {
			continue
		}
		if scratch[next] == nil {
			scratch[next] = make([]T, len(in))
		}
		buf := scratch[next]
		if err := recv(k, buf, (v+mask+treeRoot)%p, stepReduce); err != nil {
			return err
		}
		op(buf, acc) // buf = acc ⊕ buf: the lower block is in
		acc, next = buf, next^1
	}
	// Here v == 0: this rank is the tree's root.
	if r == root {
		copy(out, acc)
		return nil
	}
	return send(k, acc, root, stepReduceRoot)
}
