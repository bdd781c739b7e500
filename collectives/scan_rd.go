package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// scanRD is the recursive-doubling scan (MPICH's). Each rank keeps partial,
// the reduction of its whole aligned group of 2ʲ ranks, and out, the
// reduction from the group's first rank up to itself. In round j it swaps
// partial with rank r ⊕ 2ʲ (if that rank exists): a partial from the lower
// group is prepended to both out and partial (it is the in operand); one
// from the higher group is appended to partial only. Groups are contiguous
// and combined lower ⊕ higher, so non-commutative ops work. Any p: a
// missing partner only leaves a partial short of ranks that nobody above
// needs.
//
// For the exclusive scan out starts empty and takes the first lower partial
// as is; rank 0 never receives one and leaves out unchanged.
//
// in may be out (in place). Cost: ⌈lg p⌉·(α + nβ + 2nγ).
func scanRD[T mpi.Numeric](k call, in, out []T, op Op[T], exclusive bool) error {
	p, r := k.size(), k.rank()
	partial, sc1 := getScratch[T](len(in))
	defer putScratch(sc1)
	copy(partial, in)
	tmp, sc2 := getScratch[T](len(in))
	defer putScratch(sc2)
	if !exclusive {
		copy(out, in)
	}
	haveOut := !exclusive
	for mask := 1; mask < p; mask <<= 1 {
		dst := r ^ mask
		if dst >= p {
			continue
		}
		if err := sendrecv(k, partial, dst, tmp, dst, stepScan); err != nil {
			return err
		}
		if dst < r {
			if haveOut {
				op(out, tmp)
			} else {
				copy(out, tmp)
				haveOut = true
			}
			op(partial, tmp)
		} else {
			op(tmp, partial)
			partial, tmp = tmp, partial
		}
	}
	return nil
}
