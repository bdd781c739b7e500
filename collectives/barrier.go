package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Barrier returns once every rank of c has called it (MPI_Barrier). On one
// host it waits in shared memory (shm_ops.go); across hosts, with several
// ranks on some host, it is host-aware (barrierNode); otherwise, and for
// Ibarrier, it uses the dissemination algorithm (barrier_dissemination.go).
// The first call on a communicator of nodeMinRanks or more ranks learns
// its host layout (see Allreduce).
func Barrier(c *mpi.Comm) error {
	k, alone, err := planBarrier(c)
	if err != nil || alone {
		return err
	}
	if s := shmOf(c); s != nil {
		return wrap("barrier", s.barrier())
	}
	if c.Size() >= nodeMinRanks {
		h, err := hierarchyOf(c)
		if err != nil {
			return wrap("barrier", err)
		}
		if h.useful {
			return wrap("barrier", barrierNode(k, h, shmOf(h.node)))
		}
	}
	return runBarrier(k)
}

// barrierNode is the host-aware barrier, for blocking calls on a
// communicator spanning hosts whose node communicator has a shared-memory
// region sn:
//
//  1. every rank posts its arrival in its host's region; the host's leader
//     (node rank 0) waits for all of them;
//  2. the leaders run the dissemination barrier among themselves;
//  3. each leader posts the release, which the ranks of its host wait for.
//
// Cost: two rounds of waiting on each host and ⌈lg h⌉ rounds of messages
// among h leaders, instead of ⌈lg p⌉ rounds of messages that mostly cross
// hosts. A leader whose step 2 fails posts a failure, which its host's
// ranks report instead of waiting. A host without a region (sn == nil: one
// rank, or no room in its /dev/shm) does steps 1 and 3 with messages.
func barrierNode(k call, h *hierarchy, sn *shmColl) error {
	if sn == nil {
		kn := k.on(h.node)
		if err := barrierDissemination(kn); err != nil {
			return err
		}
		if h.leaders != nil {
			if err := barrierDissemination(k.on(h.leaders)); err != nil {
				return err
			}
		}
		return bcastBinomial(kn, []byte{}, 0)
	}
	seq1 := sn.next()
	d1 := shmDesc(seq1, shmBarrier, 0, 0, 0)
	if err := sn.postOnly(seq1, d1); err != nil {
		return err
	}
	var err error
	if h.leaders != nil {
		if err = sn.awaitAll(seq1, d1); err == nil {
			err = barrierDissemination(k.on(h.leaders))
		}
	}
	seq2 := sn.next()
	d2 := shmDesc(seq2, shmBarrier, 0, 0, 0)
	if rerr := sn.reserve(seq2); rerr != nil {
		return rerr
	}
	if h.leaders != nil {
		if err != nil {
			sn.post(seq2, shmDesc(seq2, shmFailed, 0, 0, 0))
			return err
		}
		sn.post(seq2, d2)
		return nil
	}
	sn.post(seq2, d2) // this rank's arrival at seq2: it has read everything before
	return sn.await(0, seq2, d2)
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
