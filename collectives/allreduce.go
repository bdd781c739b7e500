package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Allreduce thresholds. Vectors below allreduceLongBytes (or with fewer
// elements than ranks) use recursive doubling; longer ones the ring when
// the op is one of the package's commutative ones and p is not a power of
// two (the ring needs no folding), else Rabenseifner. On communicators of
// at least nodeMinRanks ranks spanning several hosts with several ranks on
// some host, the host-aware algorithm wraps those.
const (
	allreduceLongBytes = 32 << 10
	nodeMinRanks       = 4
)

// Allreduce combines the send buffers of all ranks with op, in rank order,
// and leaves the result in recv on every rank (MPI_Allreduce):
// recv = send₀ ⊕ send₁ ⊕ … ⊕ sendₚ₋₁.
//
// send and recv have the same length on every rank. In-place form
// (MPI_IN_PLACE): send == nil means recv holds this rank's contribution,
// which the result replaces. send and recv must not overlap otherwise; send
// is never modified. Neither may be touched by other goroutines during the
// call.
//
// Every rank gets bitwise the same result, and the same one on every run
// with the same rank count, vector length and host layout: each algorithm
// combines in an order fixed by those alone (see Op). A rank whose length
// differs from its partners' fails with ErrMismatch.
//
// Algorithms: recursive doubling (short vectors, allreduce_rd.go),
// Rabenseifner's reduce-scatter + allgather (long, allreduce_rabenseifner.go),
// the ring (long, commutative op, allreduce_ring.go), and host-aware
// (communicators spanning hosts, allreduce_node.go). The first call on a
// communicator of nodeMinRanks or more ranks learns its host layout with
// collective SplitType and Split calls, cached for later calls.
func Allreduce[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T]) error {
	run, err := planAllreduce(c, send, recv, op)
	if err != nil {
		return err
	}
	return run()
}

// Iallreduce starts an Allreduce and returns its Request. send and recv
// must not be touched until the request completes. The first call on a
// communicator may block while it learns the host layout (see Allreduce).
func Iallreduce[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T]) *mpi.Request {
	run, err := planAllreduce(c, send, recv, op)
	return start(c, run, err)
}

func planAllreduce[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T]) (func() error, error) {
	const name = "allreduce"
	if err := checkComm(name, c); err != nil {
		return nil, err
	}
	if op == nil {
		return nil, countErr(name, "nil op")
	}
	if send != nil && len(send) != len(recv) {
		return nil, countErr(name, "send has %d elements, recv %d", len(send), len(recv))
	}
	if c.Size() == 1 {
		return func() error { copy(recv, send); return nil }, nil
	}
	k := newCall(c)
	comm := commutative(op)
	var h *hierarchy
	if c.Size() >= nodeMinRanks {
		var err error
		if h, err = hierarchyOf(c); err != nil {
			return nil, wrap(name, err)
		}
		if !h.useful || !(h.ordered || comm) {
			h = nil
		}
	}
	return func() error {
		if send != nil {
			copy(recv, send)
		}
		if h != nil {
			return wrap(name, allreduceNode(k, h, recv, op, comm))
		}
		return wrap(name, allreduceFlat(k, recv, op, comm))
	}, nil
}

// allreduceFlat picks the algorithm for one level of ranks.
func allreduceFlat[T mpi.Numeric](k call, buf []T, op Op[T], commutative bool) error {
	p := k.size()
	switch {
	case p == 1:
		return nil
	case sizeOf[T]()*len(buf) < allreduceLongBytes || len(buf) < p:
		return allreduceRD(k, buf, op)
	case commutative && p != pof2Below(p):
		return allreduceRing(k, buf, op)
	default:
		return allreduceRabenseifner(k, buf, op)
	}
}
