package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Reduce combines the send buffers of all ranks with op, in rank order, into
// recv on root (MPI_Reduce): recv = send₀ ⊕ send₁ ⊕ … ⊕ sendₚ₋₁.
//
// Every rank passes a send buffer of the same length n. recv is used on the
// root only (pass nil elsewhere) and must have length n there. In-place
// form (MPI_IN_PLACE): on the root, send == nil means recv holds the root's
// own contribution, which the result replaces. send and recv must not
// overlap otherwise; send is never modified. Neither may be touched by other
// goroutines during the call.
//
// The algorithm is a binomial tree (reduce_binomial.go). A rank whose
// length differs from its tree parent's fails with ErrMismatch.
func Reduce[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T], root int) error {
	run, err := planReduce(c, send, recv, op, root)
	if err != nil {
		return err
	}
	if s := shmOf(c); s != nil {
		in, out := send, []T(nil)
		if c.Rank() == root {
			out = recv
			if send == nil {
				in = recv
			}
		}
		if fitsShm(len(in) * sizeOf[T]()) {
			return wrap("reduce", shmReduceOp(s, shmReduce, in, out, op, root))
		}
		if err := s.arrival(shmReduce, typeCode[T](), root, len(in)); err != nil {
			return wrap("reduce", err)
		}
	}
	return run()
}

// Ireduce starts a Reduce and returns its Request. send and recv must not
// be touched until the request completes.
func Ireduce[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T], root int) *mpi.Request {
	run, err := planReduce(c, send, recv, op, root)
	return start(c, run, err)
}

func planReduce[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T], root int) (func() error, error) {
	const name = "reduce"
	if err := checkComm(name, c); err != nil {
		return nil, err
	}
	if err := checkRoot(name, c, root); err != nil {
		return nil, err
	}
	if op == nil {
		return nil, countErr(name, "nil op")
	}
	in := send
	if c.Rank() == root {
		if send == nil {
			in = recv
		} else if len(send) != len(recv) {
			return nil, countErr(name, "send has %d elements, recv %d", len(send), len(recv))
		}
	}
	if c.Size() == 1 {
		return func() error { copy(recv, in); return nil }, nil
	}
	k := newCall(c)
	comm := commutative(op)
	return func() error { return wrap(name, reduceBinomial(k, in, recv, op, root, comm)) }, nil
}
