package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// reduceScatterReduce is the order-preserving reduce-scatter: a binomial
// reduce in rank order to rank 0 (reduce_binomial.go) into scratch, then
// rank 0 sends each rank its block (scatter_linear.go).
//
// Cost: ⌈lg p⌉·(α + nβ + nγ) + (p−1)·α + (p−1)/p·nβ (n the total).
func reduceScatterReduce[T mpi.Numeric](k call, send, recv []T, counts, displs []int, op Op[T]) error {
	var work []T
	if k.rank() == 0 {
		work = make([]T, len(send))
	}
	if err := reduceBinomial(k, send, work, op, 0, false); err != nil {
		return err
	}
	return scatterLinear(k, work, recv, counts, displs, 0)
}
