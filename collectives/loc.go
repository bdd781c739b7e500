package collectives

import (
	"math"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// A Loc is a value with the index (typically a rank or an element number)
// where it was found, the element of MinLoc and MaxLoc (MPI's
// MPI_DOUBLE_INT and relatives).
type Loc[T Real] struct {
	Val T
	Idx int32
}

// A LocOp combines vectors of Locs like an Op: inout[i] = in[i] ⊕ inout[i],
// in from the lower ranks.
type LocOp[T Real] func(inout, in []Loc[T])

// MinLoc keeps the smaller value and its index; between equal values, the
// smaller index (MPI_MINLOC).
func MinLoc[T Real](inout, in []Loc[T]) {
	in = in[:len(inout)]
	for i, a := range in {
		b := inout[i]
		if a.Val < b.Val || (a.Val == b.Val && a.Idx < b.Idx) {
			inout[i] = a
		}
	}
}

// MaxLoc keeps the larger value and its index; between equal values, the
// smaller index (MPI_MAXLOC).
func MaxLoc[T Real](inout, in []Loc[T]) {
	in = in[:len(inout)]
	for i, a := range in {
		b := inout[i]
		if a.Val > b.Val || (a.Val == b.Val && a.Idx < b.Idx) {
			inout[i] = a
		}
	}
}

// Locs are not mpi.Numeric, so they travel in a fixed-size encoding: two
// uint64 words per Loc, the value's bits (float64 bits for floats, which
// hold any float32 exactly; two's complement for integers) and the index.
// Encoding and decoding are exact. The encoded vector is reduced with
// recursive doubling (allreduce) or a binomial tree (reduce), which never
// split a vector, so a Loc's two words stay together. No msgpack involved.

// AllreduceLoc is Allreduce for vectors of Locs, typically with MinLoc or
// MaxLoc: every rank gets send₀ ⊕ … ⊕ sendₚ₋₁ in recv. send == nil means
// in place. Combination is in rank order (op may be non-commutative).
// Algorithm: recursive doubling on the encoding; cost as allreduceRD with
// n twice 16 bytes per element, plus encoding.
func AllreduceLoc[T Real](c *mpi.Comm, send, recv []Loc[T], op LocOp[T]) error {
	const name = "allreduce loc"
	if err := checkComm(name, c); err != nil {
		return err
	}
	if op == nil {
		return countErr(name, "nil op")
	}
	in := send
	if send == nil {
		in = recv
	} else if len(send) != len(recv) {
		return countErr(name, "send has %d elements, recv %d", len(send), len(recv))
	}
	if c.Size() == 1 {
		copy(recv, in)
		return nil
	}
	k := newCall(c)
	words := encodeLocs(in)
	if err := allreduceRD(k, words, encodedOp(op)); err != nil {
		return wrap(name, err)
	}
	decodeLocs(recv, words)
	return nil
}

// ReduceLoc is Reduce for vectors of Locs: root gets send₀ ⊕ … ⊕ sendₚ₋₁
// in recv (nil elsewhere); on the root, send == nil means in place.
// Algorithm: the rank-ordered binomial tree of Reduce on the encoding.
func ReduceLoc[T Real](c *mpi.Comm, send, recv []Loc[T], op LocOp[T], root int) error {
	const name = "reduce loc"
	if err := checkComm(name, c); err != nil {
		return err
	}
	if err := checkRoot(name, c, root); err != nil {
		return err
	}
	if op == nil {
		return countErr(name, "nil op")
	}
	in := send
	if c.Rank() == root {
		if send == nil {
			in = recv
		} else if len(send) != len(recv) {
			return countErr(name, "send has %d elements, recv %d", len(send), len(recv))
		}
	}
	if c.Size() == 1 {
		copy(recv, in)
		return nil
	}
	k := newCall(c)
	words := encodeLocs(in)
	var out []uint64
	if c.Rank() == root {
		out = make([]uint64, len(words))
	}
	if err := reduceBinomial(k, words, out, encodedOp(op), root, false); err != nil {
		return wrap(name, err)
	}
	if c.Rank() == root {
		decodeLocs(recv, out)
	}
	return nil
}

// encodedOp applies op to encoded vectors.
func encodedOp[T Real](op LocOp[T]) Op[uint64] {
	return func(inout, in []uint64) {
		a, b := make([]Loc[T], len(inout)/2), make([]Loc[T], len(in)/2)
		decodeLocs(a, inout)
		decodeLocs(b, in)
		op(a, b)
		encodeInto(inout, a)
	}
}

func encodeLocs[T Real](ls []Loc[T]) []uint64 {
	w := make([]uint64, 2*len(ls))
	encodeInto(w, ls)
	return w
}

func encodeInto[T Real](w []uint64, ls []Loc[T]) {
	kind := kindOf[T]()
	for i, l := range ls {
		switch kind {
		case kindFloat:
			w[2*i] = math.Float64bits(float64(l.Val))
		case kindSigned:
			w[2*i] = uint64(int64(l.Val))
		default:
			w[2*i] = uint64(l.Val)
		}
		w[2*i+1] = uint64(uint32(l.Idx))
	}
}

func decodeLocs[T Real](ls []Loc[T], w []uint64) {
	kind := kindOf[T]()
	for i := range ls {
		switch kind {
		case kindFloat:
			ls[i].Val = T(math.Float64frombits(w[2*i]))
		case kindSigned:
			ls[i].Val = T(int64(w[2*i]))
		default:
			ls[i].Val = T(w[2*i])
		}
		ls[i].Idx = int32(uint32(w[2*i+1]))
	}
}

const (
	kindUnsigned = iota
	kindSigned
	kindFloat
)

// kindOf classifies T by arithmetic, which works for named types too.
func kindOf[T Real]() int {
	var half T = 1
	half /= 2
	var neg T
	neg--
	switch {
	case half != 0:
		return kindFloat
	case neg < 0:
		return kindSigned
	}
	return kindUnsigned
}
