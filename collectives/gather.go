package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// gatherShortBytes: blocks below it (per rank) are gathered and scattered
// along a binomial tree, longer ones directly to or from the root.
const gatherShortBytes = 2 << 10

// Gather collects the send buffers of all ranks, in rank order, into recv on
// root (MPI_Gather): rank i's block is recv[i·n : (i+1)·n], n = len(send).
//
// Every rank passes a send buffer of the same length n; recv is used on the
// root only (nil elsewhere) and must have length Size()·n there. In-place
// form: on the root, send == nil means the root's block is already in place
// in recv (n = len(recv)/Size()). Buffers must not overlap otherwise and
// must not be touched by other goroutines during the call. A rank whose
// length differs from the root's makes a receiving rank fail with
// ErrMismatch. Ranks that pass different roots fail with ErrMismatch on at
// least one rank when the blocks are long (the linear algorithm starts with
// a root check); with short blocks they may wait until the job aborts.
//
// Algorithms: binomial tree for short blocks (gather_binomial.go), each
// rank sending straight to the root otherwise (gather_linear.go); on one
// host, blocks that fit a slot go through the communicator's shared-memory
// region (shm_ops.go).
func Gather[T mpi.Numeric](c *mpi.Comm, send, recv []T, root int) error {
	const name = "gather"
	if err := checkComm(name, c); err != nil {
		return err
	}
	if err := checkRoot(name, c, root); err != nil {
		return err
	}
	p, r := c.Size(), c.Rank()
	n, own := len(send), send
	if r == root {
		if send == nil {
			if len(recv)%p != 0 {
				return countErr(name, "in-place recv of %d elements is not a multiple of %d ranks", len(recv), p)
			}
			n = len(recv) / p
			own = recv[r*n : (r+1)*n]
		} else if len(recv) != p*n {
			return countErr(name, "recv has %d elements; want %d ranks × %d", len(recv), p, n)
		}
	}
	if p == 1 {
		copy(recv, own)
		return nil
	}
	k := newCall(c)
	if s := shmOf(c); s != nil {
		if s.fits(n * sizeOf[T]()) {
			out := recv
			if r != root {
				out = nil
			}
			return wrap(name, shmGatherOp(s, shmGather, own, out, n, root))
		}
		if err := s.arrival(shmGather, typeCode[T](), root, n); err != nil {
			return wrap(name, err)
		}
	}
	if n*sizeOf[T]() < gatherShortBytes {
		return wrap(name, gatherBinomial(k, own, recv, n, root))
	}
	counts, displs := uniformLayout(n, p)
	return wrap(name, gatherLinear(k, own, recv, counts, displs, root))
}

// Gatherv is Gather with blocks of different sizes (MPI_Gatherv): rank i
// sends len(send) elements, which the root stores at recv[displs[i] :
// displs[i]+counts[i]]. counts and displs (in elements) are used on the
// root only and must describe non-overlapping blocks inside recv. In-place
// form: on the root, send == nil means its block is already in place. A
// rank whose length differs from the root's counts entry makes the root
// fail with ErrMismatch, and so do ranks that pass different roots (on at
// least one rank). Algorithm: linear (gather_linear.go), after a root check.
func Gatherv[T mpi.Numeric](c *mpi.Comm, send, recv []T, counts, displs []int, root int) error {
	const name = "gatherv"
	if err := checkComm(name, c); err != nil {
		return err
	}
	if err := checkRoot(name, c, root); err != nil {
		return err
	}
	p, r := c.Size(), c.Rank()
	own := send
	if r == root {
		if err := checkLayout(name, "recv", counts, displs, len(recv), p, true); err != nil {
			return err
		}
		mine := recv[displs[r] : displs[r]+counts[r]]
		if send == nil {
			own = mine
		} else if len(send) != counts[r] {
			return countErr(name, "root sends %d elements but counts[%d] = %d", len(send), r, counts[r])
		}
	}
	if p == 1 {
		copy(recv[displs[0]:], own)
		return nil
	}
	k := newCall(c)
	return wrap(name, gatherLinear(k, own, recv, counts, displs, root))
}

// uniformLayout returns counts and displacements of p blocks of n.
func uniformLayout(n, p int) (counts, displs []int) {
	counts, displs = make([]int, p), make([]int, p)
	for i := range p {
		counts[i], displs[i] = n, i*n
	}
	return counts, displs
}
