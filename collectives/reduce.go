package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// reduceLongBytes: Reduce of vectors of at least this many bytes (and at
// least as many elements as ranks) uses Rabenseifner's algorithm for the
// package's commutative ops, the binomial tree otherwise; long vectors
// first check that the ranks agree on the root (agreeRoot). The same
// threshold as Allreduce's recursive doubling/Rabenseifner switch.
const reduceLongBytes = allreduceLongBytes

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
// Algorithms: a binomial tree (reduce_binomial.go); for long vectors and
// the package's commutative ops, Rabenseifner's reduce-scatter + gather
// (reduce_rabenseifner.go); on one host, vectors that fit a slot go
// through the communicator's shared-memory region (shm_ops.go). Each
// combines in an order fixed by the rank count, the vector length and the
// root, so results are reproducible. A rank whose length differs from its
// partners' fails with ErrMismatch.
// Vectors of reduceLongBytes or more start with a root check, so that ranks
// passing different roots fail with ErrMismatch on at least one rank;
// shorter ones skip it (one message less) and may then wait until the job
// aborts.
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
		if s.fits(len(in) * sizeOf[T]()) {
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
	long := sizeOf[T]()*len(in) >= reduceLongBytes
	return func() error {
		if long {
			if err := agreeRoot(k, root, stepReduce); err != nil {
				return wrap(name, err)
			}
			if comm && len(in) >= c.Size() {
				return wrap(name, reduceRabenseifner(k, in, recv, op, root))
			}
		}
		return wrap(name, reduceBinomial(k, in, recv, op, root, comm))
	}, nil
}
