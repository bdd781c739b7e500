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
// (communicators spanning hosts, allreduce_node.go); on one host, the
// blocking form of vectors that fit a slot goes through the communicator's
// shared-memory region (shm.go, shm_ops.go). The first call on a
// communicator of nodeMinRanks or more ranks learns its host layout with
// collective SplitType and Split calls, cached for later calls.
func Allreduce[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T]) error {
	p, err := planAllreduce(c, send, recv, op)
	if err != nil || p.alone {
		if err == nil && send != nil {
			copy(recv, send)
		}
		return err
	}
	if s := shmOf(c); s != nil {
		if s.fits(len(recv) * sizeOf[T]()) {
			return wrap("allreduce", shmAllreduceOp(s, send, recv, op))
		}
		if err := s.arrival(shmAllreduce, typeCode[T](), 0, len(recv)); err != nil {
			return wrap("allreduce", err)
		}
	}
	if p.h != nil {
		p.nodeShm = shmOf(p.h.node)
	}
	return p.run()
}

// Iallreduce starts an Allreduce and returns its Request. send and recv
// must not be touched until the request completes. The first call on a
// communicator may block while it learns the host layout (see Allreduce).
func Iallreduce[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T]) *mpi.Request {
	p, err := planAllreduce(c, send, recv, op)
	return start(c, p.run, err)
}

// allreducePlan is an Allreduce whose arguments are checked and whose
// algorithm is chosen: a value, so that a blocking Allreduce allocates
// nothing for it.
type allreducePlan[T mpi.Numeric] struct {
	k          call
	send, recv []T
	op         Op[T]
	comm       bool       // op is commutative
	h          *hierarchy // host-aware algorithm, or nil
	nodeShm    *shmColl   // h.node's shared-memory region, for blocking calls
	alone      bool       // a communicator of one rank
}

func planAllreduce[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T]) (allreducePlan[T], error) {
	const name = "allreduce"
	if err := checkComm(name, c); err != nil {
		return allreducePlan[T]{}, err
	}
	if op == nil {
		return allreducePlan[T]{}, countErr(name, "nil op")
	}
	if send != nil && len(send) != len(recv) {
		return allreducePlan[T]{}, countErr(name, "send has %d elements, recv %d", len(send), len(recv))
	}
	if c.Size() == 1 {
		return allreducePlan[T]{send: send, recv: recv, alone: true}, nil
	}
	p := allreducePlan[T]{k: newCall(c), send: send, recv: recv, op: op, comm: commutative(op)}
	if c.Size() >= nodeMinRanks {
		h, err := hierarchyOf(c)
		if err != nil {
			return allreducePlan[T]{}, wrap(name, err)
		}
		if h.useful && (h.ordered || p.comm) {
			p.h = h
		}
	}
	return p, nil
}

// run carries out the planned Allreduce.
func (p allreducePlan[T]) run() error {
	const name = "allreduce"
	if p.send != nil && p.h == nil && !p.alone && p.comm && p.k.size() == pof2Below(p.k.size()) &&
		sizeOf[T]()*len(p.recv) >= allreduceLongBytes && len(p.recv) >= p.k.size() {
		return wrap(name, allreduceRabenseifnerFrom(p.k, p.send, p.recv, p.op))
	}
	if p.send != nil {
		copy(p.recv, p.send)
	}
	switch {
	case p.alone:
		return nil
	case p.h != nil && p.h.shmAll && p.h.uniform && p.h.cross != nil && p.nodeShm != nil &&
		sizeOf[T]()*len(p.recv) >= allreduceLongBytes && len(p.recv) >= p.nodeShm.p:
		return wrap(name, allreduceNodeSliced(p.k, p.h, p.recv, p.op, p.comm, p.nodeShm))
	case p.h != nil:
		return wrap(name, allreduceNode(p.k, p.h, p.recv, p.op, p.comm, p.nodeShm))
	}
	return wrap(name, allreduceFlat(p.k, p.recv, p.op, p.comm))
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
