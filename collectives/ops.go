package collectives

import (
	"reflect"
	"runtime"
	"strings"
	"sync"

	"gonum.org/v1/gonum/floats"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// Real is the set of ordered numeric element types: mpi.Numeric without the
// complex types. Max, Min, MinLoc and MaxLoc need it.
type Real interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr |
		~float32 | ~float64
}

// Integer is the set of integer element types. The logical and bitwise
// operations need it, so that BAnd on a []float64 is a compile-time error.
type Integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

// An Op combines two equally long vectors element by element, in place:
//
//	inout[i] = in[i] ⊕ inout[i]
//
// following MPI's convention for user operations: in holds the contribution
// of the LOWER ranks and inout that of the higher ones, so ⊕ may be
// non-commutative. Every reduction in this package applies an Op in rank
// order: the result is x₀ ⊕ x₁ ⊕ … ⊕ xₚ₋₁ for any associative ⊕, with
// the brackets fixed by the algorithm, the rank count and the element count
// (never by timing), so that floating-point results are reproducible.
//
// An Op must be associative, must not keep or modify in, and must not call
// collectives. The package's own operations (Sum, Prod, Max, Min, the
// logical and bitwise ones) are also commutative, and the package knows it:
// for them it may pick algorithms that combine in another fixed order (the
// ring allreduce, a reduce tree rooted at the root). Commutativity is only
// recognised for those functions themselves, not for closures wrapping them.
type Op[T mpi.Numeric] func(inout, in []T)

// Sum adds: inout[i] = in[i] + inout[i]. []float64 uses gonum's assembly
// kernel.
func Sum[T mpi.Numeric](inout, in []T) {
	if d, ok := any(inout).([]float64); ok {
		floats.Add(d, any(in).([]float64))
		return
	}
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = in[i] + inout[i]
	}
}

// Prod multiplies: inout[i] = in[i] * inout[i].
func Prod[T mpi.Numeric](inout, in []T) {
	if d, ok := any(inout).([]float64); ok {
		floats.Mul(d, any(in).([]float64))
		return
	}
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = in[i] * inout[i]
	}
}

// Max keeps the larger: inout[i] = max(in[i], inout[i]). A NaN in either
// operand gives NaN (the built-in max's rule).
func Max[T Real](inout, in []T) {
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = max(in[i], inout[i])
	}
}

// Min keeps the smaller: inout[i] = min(in[i], inout[i]). A NaN in either
// operand gives NaN.
func Min[T Real](inout, in []T) {
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = min(in[i], inout[i])
	}
}

// LAnd is the logical and, non-zero meaning true: inout[i] becomes 1 if both
// are non-zero, else 0.
func LAnd[T Integer](inout, in []T) {
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = b2i[T](in[i] != 0 && inout[i] != 0)
	}
}

// LOr is the logical or: inout[i] becomes 1 if either is non-zero, else 0.
func LOr[T Integer](inout, in []T) {
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = b2i[T](in[i] != 0 || inout[i] != 0)
	}
}

// LXor is the logical exclusive or: inout[i] becomes 1 if exactly one is
// non-zero, else 0.
func LXor[T Integer](inout, in []T) {
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = b2i[T]((in[i] != 0) != (inout[i] != 0))
	}
}

// BAnd is the bitwise and: inout[i] = in[i] & inout[i].
func BAnd[T Integer](inout, in []T) {
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = in[i] & inout[i]
	}
}

// BOr is the bitwise or: inout[i] = in[i] | inout[i].
func BOr[T Integer](inout, in []T) {
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = in[i] | inout[i]
	}
}

// BXor is the bitwise exclusive or: inout[i] = in[i] ^ inout[i].
func BXor[T Integer](inout, in []T) {
	in = in[:len(inout)]
	for i := range inout {
		inout[i] = in[i] ^ inout[i]
	}
}

func b2i[T Integer](b bool) T {
	if b {
		return 1
	}
	return 0
}

// commutativeOps names the package's operations that are commutative.
var commutativeOps = map[string]bool{
	"Sum": true, "Prod": true, "Max": true, "Min": true,
	"LAnd": true, "LOr": true, "LXor": true,
	"BAnd": true, "BOr": true, "BXor": true,
}

// pkgMarker gives the package's import path through reflection.
type pkgMarker struct{}

// commutative reports whether op is one of the package's own commutative
// operations (Sum, Max, …), recognised by the name of the function behind
// the func value ("…/collectives.Sum[...]"). Closures and user functions are
// reported as non-commutative, which is always safe: the caller then picks
// an algorithm that combines in rank order. Only functions of this package
// can carry such a name, so a user operation is never taken for one.
func commutative[T mpi.Numeric](op Op[T]) bool {
	if op == nil {
		return false
	}
	pc := reflect.ValueOf(op).Pointer()
	if v, ok := commutativePCs.Load(pc); ok {
		return v.(bool)
	}
	ok := commutativeName(pc)
	commutativePCs.Store(pc, ok)
	return ok
}

// commutativePCs caches commutative by function address: looking the
// function up by name costs more than a small collective.
var commutativePCs sync.Map // uintptr → bool

func commutativeName(pc uintptr) bool {
	f := runtime.FuncForPC(pc)
	if f == nil {
		return false
	}
	rest, ok := strings.CutPrefix(f.Name(), reflect.TypeFor[pkgMarker]().PkgPath()+".")
	if !ok {
		return false
	}
	name, inst, ok := strings.Cut(rest, "[")
	return ok && inst == "...]" && commutativeOps[name]
}
