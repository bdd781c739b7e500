package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Barrier returns once every rank of c has called it (MPI_Barrier). It uses
// the dissemination algorithm (barrier_dissemination.go).
func Barrier(c *mpi.Comm) error {
	run, err := planBarrier(c)
	if err != nil {
		return err
	}
	return run()
}

// Ibarrier starts a barrier and returns a Request that completes once every
// rank has called Barrier or Ibarrier (MPI_Ibarrier).
func Ibarrier(c *mpi.Comm) *mpi.Request {
	run, err := planBarrier(c)
	return start(c, run, err)
}

func planBarrier(c *mpi.Comm) (func() error, error) {
	const op = "barrier"
	if err := checkComm(op, c); err != nil {
		return nil, err
	}
	if c.Size() == 1 {
		return nop, nil
	}
	k := newCall(c)
	return func() error { return wrap(op, barrierDissemination(k)) }, nil
}

func nop() error { return nil }
