package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// allgatherShortBytes: on a power-of-two rank count, totals below it use
// recursive doubling; the rest the ring.
const allgatherShortBytes = 64 << 10

// Allgather collects the send buffers of all ranks, in rank order, into recv
// on every rank (MPI_Allgather): rank i's block is recv[i·n : (i+1)·n],
// n = len(send), len(recv) = Size()·n.
//
// In-place form: send == nil means this rank's block is already in place in
// recv (n = len(recv)/Size()). Buffers must not overlap otherwise and must
// not be touched by other goroutines during the call. Length disagreements
// fail with ErrMismatch on a receiving rank.
//
// Algorithms: recursive doubling for short totals on power-of-two rank
// counts (allgather_rd.go), the ring otherwise (allgather_ring.go). On one
// host the blocking form goes through the communicator's shared-memory
// region, or for large blocks copies straight from the other ranks'
// buffers (shm.go, shm_ops.go).
func Allgather[T mpi.Numeric](c *mpi.Comm, send, recv []T) error {
	run, err := planAllgather(c, send, recv)
	if err != nil {
		return err
	}
	if s := shmOf(c); s != nil {
		n, r := len(recv)/c.Size(), c.Rank()
		own := send
		if send == nil {
			own = recv[r*n : (r+1)*n]
		}
		if s.fits(n * sizeOf[T]()) {
			return wrap("allgather", shmGatherOp(s, shmAllgather, own, recv, n, 0))
		}
		if s.cma {
			return wrap("allgather", shmAllgatherCMA(s, own, recv, n))
		}
		if err := s.arrival(shmAllgather, typeCode[T](), 0, n); err != nil {
			return wrap("allgather", err)
		}
	}
	return run()
}

// Iallgather starts an Allgather and returns its Request. send and recv must
// not be touched until the request completes.
func Iallgather[T mpi.Numeric](c *mpi.Comm, send, recv []T) *mpi.Request {
	run, err := planAllgather(c, send, recv)
	return start(c, run, err)
}

func planAllgather[T mpi.Numeric](c *mpi.Comm, send, recv []T) (func() error, error) {
	const name = "allgather"
	if err := checkComm(name, c); err != nil {
		return nil, err
	}
	p, r := c.Size(), c.Rank()
	n := len(send)
	if send == nil {
		if len(recv)%p != 0 {
			return nil, countErr(name, "in-place recv of %d elements is not a multiple of %d ranks", len(recv), p)
		}
		n = len(recv) / p
	} else if len(recv) != p*n {
		return nil, countErr(name, "recv has %d elements; want %d ranks × %d", len(recv), p, n)
	}
	if p == 1 {
		return func() error { copy(recv, send); return nil }, nil
	}
	k := newCall(c)
	return func() error {
		if send != nil {
			copy(recv[r*n:(r+1)*n], send)
		}
		if p == pof2Below(p) && p*n*sizeOf[T]() < allgatherShortBytes {
			return wrap(name, allgatherRD(k, recv, n))
		}
		block := func(i int) (int, int) { return i * n, (i + 1) * n }
		return wrap(name, allgatherRing(k, recv, 0, block, stepAllgather))
	}, nil
}

// Allgatherv is Allgather with blocks of different sizes (MPI_Allgatherv):
// rank i's len(send) elements land at recv[displs[i] : displs[i]+counts[i]]
// on every rank. counts and displs (in elements) are the same on all ranks
// and describe non-overlapping blocks of recv. In-place form: send == nil
// means this rank's block is already in place. Algorithm: the ring.
func Allgatherv[T mpi.Numeric](c *mpi.Comm, send, recv []T, counts, displs []int) error {
	const name = "allgatherv"
	if err := checkComm(name, c); err != nil {
		return err
	}
	p, r := c.Size(), c.Rank()
	if err := checkLayout(name, "recv", counts, displs, len(recv), p, true); err != nil {
		return err
	}
	if send != nil {
		if len(send) != counts[r] {
			return countErr(name, "send has %d elements but counts[%d] = %d", len(send), r, counts[r])
		}
		copy(recv[displs[r]:], send)
	}
	if p == 1 {
		return nil
	}
	k := newCall(c)
	block := func(i int) (int, int) { return displs[i], displs[i] + counts[i] }
	return wrap(name, allgatherRing(k, recv, 0, block, stepAllgather))
}
