package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// allreduceRabenseifner is Rabenseifner's long-message allreduce: a
// reduce-scatter by recursive halving followed by an allgather by
// recursive doubling, after folding to a power of two p' as in allreduceRD.
//
// Reduce-scatter: in round j (distance 2ʲ, increasing) a new rank and its
// partner split their current range of the vector in two; the one whose bit
// j is clear keeps the lower half, each sends the other half and combines
// the half it receives into the half it keeps. Because the distance grows,
// each partial result covers an aligned, contiguous block of ranks, and two
// adjacent blocks are always combined lower ⊕ higher: rank order holds for
// non-commutative ops (the classic halving-distance order would interleave
// ranks). After lg p' rounds every rank owns n/p' fully reduced elements,
// computed once. The allgather retraces the rounds in reverse, doubling the
// owned range each time.
//
// Cost: 2·lg p'·α + 2·(p'−1)/p'·nβ + (p'−1)/p'·nγ, plus 2·(α + nβ) when p
// is not a power of two (fold and unfold).
func allreduceRabenseifner[T mpi.Numeric](k call, buf []T, op Op[T]) error {
	return rabenseifner(k, nil, buf, op)
}

// allreduceRabenseifnerFrom is allreduceRabenseifner for a commutative op
// on a power-of-two rank count with a separate send buffer: the first
// round sends its half of send and receives the partner's half of the
// kept range straight into buf, then combines the kept half of send into
// it (op(buf, send): send ⊕ received, which is rank order on the lower
// rank and, the op being commutative, the same value on the upper one).
// That saves copying send into buf and half a vector through scratch: for
// two ranks a third of the memory traffic. send is not modified.
func allreduceRabenseifnerFrom[T mpi.Numeric](k call, send, buf []T, op Op[T]) error {
	return rabenseifner(k, send, buf, op)
}

// rabenseifner runs the algorithm; send != nil only as
// allreduceRabenseifnerFrom allows (k.size() a power of two, op
// commutative).
func rabenseifner[T mpi.Numeric](k call, send, buf []T, op Op[T]) error {
	pof2 := pof2Below(k.size())
	rem := k.size() - pof2
	tmp, sc := getScratch[T](len(buf))
	defer putScratch(sc)
	nr, err := foldIn(k, buf, tmp, op, rem)
	if err != nil {
		return err
	}
	if nr >= 0 {
		lo, hi := 0, len(buf)
		var before []span // the range held before each round
		for mask := 1; mask < pof2; mask <<= 1 {
			dst := oldRank(nr^mask, rem)
			mid := lo + (hi-lo)/2
			keep, give := span{lo, mid}, span{mid, hi}
			if nr&mask != 0 {
				keep, give = give, keep
			}
			switch {
			case send != nil: // first round, from send (see allreduceRabenseifnerFrom)
				if err := sendrecv(k, send[give.lo:give.hi], dst, buf[keep.lo:keep.hi], dst, stepRD); err != nil {
					return err
				}
				op(buf[keep.lo:keep.hi], send[keep.lo:keep.hi])
				send = nil
			default:
				if err := halve(k, buf, tmp, give, keep, dst, nr&mask != 0, op); err != nil {
					return err
				}
			}
			before = append(before, span{lo, hi})
			lo, hi = keep.lo, keep.hi
		}
		for len(before) > 0 {
			mask := 1 << (len(before) - 1)
			dst := oldRank(nr^mask, rem)
			parent := before[len(before)-1]
			before = before[:len(before)-1]
			other := span{hi, parent.hi} // the partner kept the upper half
			if nr&mask != 0 {
				other = span{parent.lo, lo}
			}
			if err := sendrecv(k, buf[lo:hi], dst, buf[other.lo:other.hi], dst, stepAG); err != nil {
				return err
			}
			lo, hi = parent.lo, parent.hi
		}
	}
	return foldOut(k, buf, rem)
}

// span is a range [lo, hi) of a vector.
type span struct{ lo, hi int }

// halve runs one round of the recursive-halving reduce-scatter: it sends
// buf[give] to dst, receives dst's part of keep into tmp[keep] and combines
// it into buf[keep] lower ⊕ higher (upper: dst holds the lower block).
func halve[T mpi.Numeric](k call, buf, tmp []T, give, keep span, dst int, upper bool, op Op[T]) error {
	if err := sendrecv(k, buf[give.lo:give.hi], dst, tmp[keep.lo:keep.hi], dst, stepRD); err != nil {
		return err
	}
	mine, theirs := buf[keep.lo:keep.hi], tmp[keep.lo:keep.hi]
	if upper {
		op(mine, theirs)
	} else {
		op(theirs, mine)
		copy(mine, theirs)
	}
	return nil
}
