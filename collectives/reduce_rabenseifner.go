package collectives

import (
	"math/bits"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// reduceRabenseifner is Rabenseifner's long-message reduce: the
// reduce-scatter of allreduceRabenseifner (fold to a power of two p', then
// recursive halving with increasing distance), after which each new rank
// owns n/p' fully reduced elements, then a binomial gather of those blocks
// to the root that retraces the halving rounds in reverse, each receiver
// merging its partner's range into the parent range of that round.
//
// Order: the fold combines the pairs (2i, 2i+1) for i < p − p', lower ⊕
// higher, and the halving combines adjacent, aligned blocks of ranks lower ⊕
// higher, exactly as allreduceRabenseifner does: the brackets depend only
// on p and n (not on the root), the combination is in rank order, and the
// result is bitwise that of allreduceRabenseifner. (It is correct for
// non-commutative ops too; the dispatcher uses it for the package's
// commutative ones.) The gather only moves data. When the root is an even
// rank that the fold would retire, its pair is folded the other way round
// (the even rank receives and computes the same x₂ᵢ ⊕ x₂ᵢ₊₁), so the
// result is gathered straight to the root.
//
// in (never modified) is this rank's input; out receives the result on
// root and may be in itself (in place). Scratch: two n-element vectors on
// non-root ranks, one on the root.
//
// Cost: 2·lg p'·α + 2·(p'−1)/p'·nβ + (p'−1)/p'·nγ, plus α + nβ + nγ when
// p is not a power of two (the fold), against ⌈lg p⌉·(α + nβ + nγ) for the
// binomial tree: bandwidth-optimal for long vectors.
func reduceRabenseifner[T mpi.Numeric](k call, in, out []T, op Op[T], root int) error {
	p, r, n := k.size(), k.rank(), len(in)
	pof2 := pof2Below(p)
	rem := p - pof2
	keep := -1 // the fold pair whose even rank survives: the root's
	if root < 2*rem && root%2 == 0 {
		keep = root / 2
	}
	buf := out
	if r != root {
		var sb *scratch
		buf, sb = getScratch[T](n)
		defer putScratch(sb)
	}
	copy(buf, in) // a no-op on an in-place root
	tmp, sc := getScratch[T](n)
	defer putScratch(sc)

	old := func(nr int) int { // new rank → rank of k
		switch {
		case nr >= rem:
			return nr + rem
		case nr == keep:
			return 2 * nr
		}
		return 2*nr + 1
	}
	// Fold: rank 2i sends to 2i+1, which computes x₂ᵢ ⊕ x₂ᵢ₊₁ and stays as
	// new rank i; the other way round for the pair keep.
	nr := r - rem
	if r < 2*rem {
		i, even := r/2, r%2 == 0
		stays := even == (i == keep)
		partner := r ^ 1
		if !stays {
			return send(k, buf, partner, stepFold)
		}
		if err := recv(k, tmp, partner, stepFold); err != nil {
			return err
		}
		if even { // tmp holds x₂ᵢ₊₁, the higher operand
			op(tmp, buf)
			copy(buf, tmp)
		} else {
			op(buf, tmp)
		}
		nr = i
	}

	// Reduce-scatter by recursive halving, distance increasing.
	var before [bits.UintSize]span // the range held before each round
	rounds := 0
	lo, hi := 0, n
	for mask := 1; mask < pof2; mask <<= 1 {
		dst := old(nr ^ mask)
		mid := lo + (hi-lo)/2
		keepS, give := span{lo, mid}, span{mid, hi}
		if nr&mask != 0 {
			keepS, give = give, keepS
		}
		if err := halve(k, buf, tmp, give, keepS, dst, nr&mask != 0, op); err != nil {
			return err
		}
		before[rounds] = span{lo, hi}
		rounds++
		lo, hi = keepS.lo, keepS.hi
	}

	// Binomial gather to the root's new rank, retracing the rounds: in the
	// round of distance m, the rank of a pair whose position relative to the
	// root has bit m set sends its range and leaves; the other merges it.
	newRoot := root - rem
	if root < 2*rem {
		newRoot = root / 2
	}
	rel := nr ^ newRoot
	for j := rounds - 1; j >= 0; j-- {
		mask := 1 << j
		dst := old(nr ^ mask)
		if rel&mask != 0 {
			return send(k, buf[lo:hi], dst, stepReduceGather)
		}
		parent := before[j]
		other := span{hi, parent.hi} // the partner kept the upper half
		if nr&mask != 0 {
			other = span{parent.lo, lo}
		}
		if err := recv(k, buf[other.lo:other.hi], dst, stepReduceGather); err != nil {
			return err
		}
		lo, hi = parent.lo, parent.hi
	}
	return nil // here r == root and buf == out holds the result
}
