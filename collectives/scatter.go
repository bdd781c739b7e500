package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Scatter hands out the blocks of send on root, in rank order (MPI_Scatter):
// rank i receives send[i·n : (i+1)·n] into recv, n = len(recv).
//
// Every rank passes a recv buffer of the same length n; send is used on the
// root only (nil elsewhere) and must have length Size()·n there. In-place
// form: on the root, recv == nil means the root's block stays in send (n =
// len(send)/Size()). Buffers must not overlap otherwise and must not be
// touched by other goroutines during the call. A rank whose length differs
// from the root's fails with ErrMismatch. Ranks that pass different roots
// fail with ErrMismatch on at least one rank when the blocks are long (the
// linear algorithm starts with a root check); with short blocks a rank
// fails when its block comes from another rank than its root implies, and
// may otherwise wait until the job aborts.
//
// Algorithms: binomial tree for short blocks (scatter_binomial.go), the root
// sending to each rank otherwise (scatter_linear.go); on one host, when all
// blocks fit a slot, through the communicator's shared-memory region
// (shm_ops.go).
func Scatter[T mpi.Numeric](c *mpi.Comm, send, recv []T, root int) error {
	const name = "scatter"
	if err := checkComm(name, c); err != nil {
		return err
	}
	if err := checkRoot(name, c, root); err != nil {
		return err
	}
	p, r := c.Size(), c.Rank()
	n, own := len(recv), recv
	if r == root {
		if recv == nil {
			if len(send)%p != 0 {
				return countErr(name, "in-place send of %d elements is not a multiple of %d ranks", len(send), p)
			}
			n = len(send) / p
			own = send[r*n : (r+1)*n]
		} else if len(send) != p*n {
			return countErr(name, "send has %d elements; want %d ranks × %d", len(send), p, n)
		}
	}
	if p == 1 {
		copy(own, send)
		return nil
	}
	k := newCall(c)
	if s := shmOf(c); s != nil {
		if s.fits(p * n * sizeOf[T]()) {
			return wrap(name, shmScatterOp(s, send, own, n, root))
		}
		if err := s.arrival(shmScatter, typeCode[T](), root, n); err != nil {
			return wrap(name, err)
		}
	}
	if n*sizeOf[T]() < gatherShortBytes {
		return wrap(name, scatterBlocksBinomial(k, send, own, n, root))
	}
	counts, displs := uniformLayout(n, p)
	if err := agreeRoot(k, root, stepScatter); err != nil {
		return wrap(name, err)
	}
	return wrap(name, scatterLinear(k, send, own, counts, displs, root))
}

// Scatterv is Scatter with blocks of different sizes (MPI_Scatterv): rank i
// receives send[displs[i] : displs[i]+counts[i]] into recv, whose length
// must equal counts[i]. send, counts and displs (in elements) are used on
// the root only; blocks may overlap there. In-place form: on the root,
// recv == nil leaves its block in send. A rank whose length differs from
// the root's counts entry fails with ErrMismatch, and so do ranks that pass
// different roots (on at least one rank). Algorithm: linear
// (scatter_linear.go), after a root check.
func Scatterv[T mpi.Numeric](c *mpi.Comm, send []T, counts, displs []int, recv []T, root int) error {
	const name = "scatterv"
	if err := checkComm(name, c); err != nil {
		return err
	}
	if err := checkRoot(name, c, root); err != nil {
		return err
	}
	p, r := c.Size(), c.Rank()
	own := recv
	if r == root {
		if err := checkLayout(name, "send", counts, displs, len(send), p, false); err != nil {
			return err
		}
		mine := send[displs[r] : displs[r]+counts[r]]
		if recv == nil {
			own = mine
		} else if len(recv) != counts[r] {
			return countErr(name, "root receives %d elements but counts[%d] = %d", len(recv), r, counts[r])
		}
	}
	if p == 1 {
		copy(own, send[displs[0]:])
		return nil
	}
	k := newCall(c)
	if err := agreeRoot(k, root, stepScatter); err != nil {
		return wrap(name, err)
	}
	return wrap(name, scatterLinear(k, send, own, counts, displs, root))
}

// scatterBlocksBinomial scatters p blocks of n (send, on root) with
// scatterBinomial: the root first lays them out in virtual-rank order
// (unless root is 0); ranks with a subtree below them receive it into
// scratch; leaves receive straight into own.
func scatterBlocksBinomial[T mpi.Numeric](k call, send, own []T, n, root int) error {
	p, r := k.size(), k.rank()
	v := (r - root + p) % p
	off := func(j int) int { return j * n }
	data := own
	switch {
	case v == 0 && root == 0:
		data = send
	case v == 0:
		data = make([]T, p*n)
		for j := range p {
			i := (j + root) % p
			copy(data[j*n:(j+1)*n], send[i*n:(i+1)*n])
		}
	case subtreeOf(v, p)-v > 1:
		data = make([]T, (subtreeOf(v, p)-v)*n)
	}
	if err := scatterBinomial(k, data, v*n, root, off, stepScatter); err != nil {
		return err
	}
	copy(own, data[:n])
	return nil
}
