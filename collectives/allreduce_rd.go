package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// allreduceRD is recursive doubling (MPICH's short-message allreduce). With
// p' = 2^⌊lg p⌋ and rem = p − p', the first 2·rem ranks fold in pairs: even
// rank 2i sends its vector to 2i+1, which combines them and stands for both
// as new rank i; ranks ≥ 2·rem become new rank r − rem. Then in round j each
// new rank exchanges its whole vector with new rank ⊕ 2ʲ and both compute
// lower ⊕ higher, so after lg p' rounds all hold the full result. Finally
// each odd folded rank sends the result back to its even partner.
//
// Order: every combination joins two adjacent, increasing blocks of ranks
// with the lower one as in, so non-commutative ops reduce in rank order,
// and both partners compute the same expression, so results are bitwise
// identical everywhere.
//
// Cost: (⌊lg p⌋ + 2·[p not a power of two])·(α + nβ) + ⌈lg p⌉·nγ.
func allreduceRD[T mpi.Numeric](k call, buf []T, op Op[T]) error {
	r := k.rank()
	pof2 := pof2Below(k.size())
	rem := k.size() - pof2
	tmp, sc := getScratch[T](len(buf))
	defer putScratch(sc)
	nr, err := foldIn(k, buf, tmp, op, rem)
	if err != nil {
		return err
	}
	if nr >= 0 {
		acc, swapped := buf, false
		for mask := 1; mask < pof2; mask <<= 1 {
			dst := oldRank(nr^mask, rem)
			if err := sendrecv(k, acc, dst, tmp, dst, stepRD); err != nil {
				return err
			}
			if dst < r {
				op(acc, tmp) // acc = tmp ⊕ acc
			} else {
				op(tmp, acc) // tmp = acc ⊕ tmp
				acc, tmp, swapped = tmp, acc, !swapped
			}
		}
		if swapped {
			copy(buf, acc)
		}
	}
	return foldOut(k, buf, rem)
}

// foldIn folds the first 2·rem ranks in pairs (see allreduceRD): rank 2i
// sends buf to 2i+1 and gets new rank −1; rank 2i+1 sets buf = buf₂ᵢ ⊕ buf
// and gets new rank i; the others get r − rem. tmp is scratch of len(buf).
func foldIn[T mpi.Numeric](k call, buf, tmp []T, op Op[T], rem int) (newRank int, err error) {
	r := k.rank()
	switch {
	case r >= 2*rem:
		return r - rem, nil
	case r%2 == 0:
		return -1, send(k, buf, r+1, stepFold)
	default:
		if err := recv(k, tmp, r-1, stepFold); err != nil {
			return -1, err
		}
		op(buf, tmp)
		return r / 2, nil
	}
}

// foldOut returns the result from each odd folded rank to its even partner.
func foldOut[T mpi.Numeric](k call, buf []T, rem int) error {
	r := k.rank()
	switch {
	case r >= 2*rem:
		return nil
	case r%2 == 0:
		return recv(k, buf, r+1, stepUnfold)
	default:
		return send(k, buf, r-1, stepUnfold)
	}
}

// oldRank maps a new rank of the folded numbering back to a rank of k.
func oldRank(newRank, rem int) int {
	if newRank < rem {
		return 2*newRank + 1
	}
	return newRank + rem
}
