package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Scan computes inclusive prefix reductions (MPI_Scan): rank i gets
// recv = send₀ ⊕ … ⊕ sendᵢ, combined in rank order. send and recv have the
// same length on every rank; send == nil means recv holds this rank's input
// (in place). Buffers must not overlap otherwise and must not be touched by
// other goroutines during the call. Algorithm: recursive doubling
// (scan_rd.go).
func Scan[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T]) error {
	return scan("scan", c, send, recv, op, false)
}

// Exscan computes exclusive prefix reductions (MPI_Exscan): rank i > 0 gets
// recv = send₀ ⊕ … ⊕ sendᵢ₋₁; rank 0's recv is left unchanged. Buffers as
// for Scan (in place: send == nil).
func Exscan[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T]) error {
	return scan("exscan", c, send, recv, op, true)
}

func scan[T mpi.Numeric](name string, c *mpi.Comm, send, recv []T, op Op[T], exclusive bool) error {
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
		if !exclusive {
			copy(recv, in)
		}
		return nil
	}
	k := newCall(c)
	return wrap(name, scanRD(k, in, recv, op, exclusive))
}
