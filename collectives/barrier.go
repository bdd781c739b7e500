package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Barrier returns once every rank of c has called it (MPI_Barrier). On one
// host it waits in shared memory (shm_ops.go); otherwise, and for Ibarrier,
// it uses the dissemination algorithm (barrier_dissemination.go).
func Barrier(c *mpi.Comm) error {
	k, alone, err := planBarrier(c)
	if err != nil || alone {
		return err
	}
	if s := shmOf(c); s != nil {
		return wrap("barrier", s.barrier())
	}
	return runBarrier(k)
}

// Ibarrier starts a barrier and returns a Request that completes once every
// rank has called Barrier or Ibarrier (MPI_Ibarrier).
func Ibarrier(c *mpi.Comm) *mpi.Request {
	k, alone, err := planBarrier(c)
	if alone {
		return start(c, nop, err)
	}
	return start(c, func() error { return runBarrier(k) }, err)
}

// planBarrier checks c and draws the call's sequence number; alone reports
// a communicator of one rank, where there is nothing to do.
func planBarrier(c *mpi.Comm) (k call, alone bool, err error) {
	if err := checkComm("barrier", c); err != nil {
		return call{}, false, err
	}
	if c.Size() == 1 {
		return call{}, true, nil
	}
	return newCall(c), false, nil
}

func runBarrier(k call) error { return wrap("barrier", barrierDissemination(k)) }

func nop() error { return nil }
