package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Alltoall sends block j of every rank's send buffer to rank j, which stores
// the block from rank i as block i of recv (MPI_Alltoall). len(send) =
// len(recv) = Size()·n with the same n on every rank. In-place form
// (MPI_IN_PLACE): send == nil means recv holds the blocks to send (block j
// for rank j), each replaced by the block rank j sends; as in MPI, every
// rank uses the same form. The buffers must not overlap otherwise and must
// not be touched by other goroutines during the call. A rank whose n
// differs fails with ErrMismatch on a receiving rank. Algorithms: pairwise
// exchange (alltoall_pairwise.go); in place, pairwise swaps
// (alltoall_inplace.go); on one host (not in place), through the
// communicator's shared-memory region, or for large blocks by copying
// straight from the other ranks' send buffers (shm_ops.go).
func Alltoall[T mpi.Numeric](c *mpi.Comm, send, recv []T) error {
	const name = "alltoall"
	if err := checkComm(name, c); err != nil {
		return err
	}
	p := c.Size()
	if send == nil {
		if len(recv)%p != 0 {
			return countErr(name, "in-place recv of %d elements is not a multiple of %d ranks", len(recv), p)
		}
		if p == 1 {
			return nil
		}
		counts, displs := uniformLayout(len(recv)/p, p)
		return wrap(name, alltoallInPlace(newCall(c), recv, counts, displs))
	}
	if len(send) != len(recv) || len(send)%p != 0 {
		return countErr(name, "send has %d elements and recv %d; want equal multiples of %d ranks", len(send), len(recv), p)
	}
	counts, displs := uniformLayout(len(send)/p, p)
	if p == 1 {
		copy(recv, send)
		return nil
	}
	k := newCall(c)
	if s := shmOf(c); s != nil {
		if s.fits(len(send) * sizeOf[T]()) {
			return wrap(name, shmAlltoallOp(s, send, recv, len(send)/p))
		}
		if s.cma {
			return wrap(name, shmAlltoallCMA(s, send, recv, len(send)/p))
		}
		if err := s.arrival(shmAlltoall, typeCode[T](), 0, len(send)/p); err != nil {
			return wrap(name, err)
		}
	}
	return wrap(name, alltoallPairwise(k, send, counts, displs, recv, counts, displs))
}

// Alltoallv is Alltoall with blocks of different sizes (MPI_Alltoallv): the
// block send[sendDispls[j] : +sendCounts[j]] goes to rank j, and the block
// from rank i lands at recv[recvDispls[i] : +recvCounts[i]], whose count
// must equal what rank i sends to this rank (else ErrMismatch). Counts and
// displacements are in elements; receive blocks must not overlap.
//
// In-place form (MPI_IN_PLACE): send == nil means the block for rank j is
// recv[recvDispls[j] : +recvCounts[j]], which is replaced by the block rank
// j sends; sendCounts and sendDispls are ignored (nil will do). Each pair
// swaps blocks of one size, so recvCounts[j] must equal rank j's
// recvCounts entry for this rank (else ErrMismatch). As in MPI, every rank
// uses the same form.
func Alltoallv[T mpi.Numeric](c *mpi.Comm, send []T, sendCounts, sendDispls []int, recv []T, recvCounts, recvDispls []int) error {
	const name = "alltoallv"
	if err := checkComm(name, c); err != nil {
		return err
	}
	p, r := c.Size(), c.Rank()
	if send == nil {
		if err := checkLayout(name, "recv", recvCounts, recvDispls, len(recv), p, true); err != nil {
			return err
		}
		if p == 1 {
			return nil
		}
		return wrap(name, alltoallInPlace(newCall(c), recv, recvCounts, recvDispls))
	}
	if err := checkLayout(name, "send", sendCounts, sendDispls, len(send), p, false); err != nil {
		return err
	}
	if err := checkLayout(name, "recv", recvCounts, recvDispls, len(recv), p, true); err != nil {
		return err
	}
	if sendCounts[r] != recvCounts[r] {
		return countErr(name, "sends itself %d elements but expects %d", sendCounts[r], recvCounts[r])
	}
	if p == 1 {
		copy(recv[recvDispls[0]:recvDispls[0]+recvCounts[0]], send[sendDispls[0]:])
		return nil
	}
	k := newCall(c)
	return wrap(name, alltoallPairwise(k, send, sendCounts, sendDispls, recv, recvCounts, recvDispls))
}
