package collectives

import (
	"reflect"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// Bcast thresholds: messages of at least bcastLongBytes on at least
// bcastMinRanks ranks use scatter + ring allgather; others the binomial tree.
// Messages of at least bcastLongBytes start with a root check (agreeRoot).
const (
	bcastLongBytes = 128 << 10
	bcastMinRanks  = 3
)

// Bcast copies buf of rank root into buf of every other rank of c
// (MPI_Bcast). Every rank passes a buffer of the same length; on non-root
// ranks its contents are overwritten. buf must not be touched by other
// goroutines during the call.
//
// Small messages go down a binomial tree (bcast_binomial.go), large ones are
// scattered in blocks and gathered back with a ring (van de Geijn,
// bcast_scatter_allgather.go). The blocking form goes, on one host, through
// the communicator's shared-memory region (or for large messages every rank
// copies straight from the root's buffer: shm_ops.go), and across hosts is
// host-aware (bcastNode). A rank whose length differs from the root's
// fails with ErrMismatch (so may the ranks below it in the tree; the others
// may wait for the job to abort). Ranks that pass different roots: long
// messages start with a root check, which fails with ErrMismatch on at
// least one rank; in the tree, a short message's receiver fails when its
// message comes from another rank than its root implies, but a rank that
// wrongly believes it is the root feeds its own buffer into a subtree
// shaped like the real one, which no rank can tell without an extra
// message.
func Bcast[T mpi.Numeric](c *mpi.Comm, buf []T, root int) error {
	p, err := planBcast(c, buf, root)
	if err != nil || p.alone {
		return err
	}
	if s := shmOf(c); s != nil {
		if s.fits(len(buf) * sizeOf[T]()) {
			return wrap("bcast", shmBcastOp(s, buf, root))
		}
		if s.cma {
			return wrap("bcast", shmBcastCMA(s, buf, root))
		}
		if err := s.arrival(shmBcast, typeCode[T](), root, len(buf)); err != nil {
			return wrap("bcast", err)
		}
	} else if c.Size() >= nodeMinRanks {
		h, err := hierarchyOf(c)
		if err != nil {
			return wrap("bcast", err)
		}
		if h.useful {
			return wrap("bcast", bcastNode(p.k, h, buf, root, shmOf(h.node)))
		}
	}
	return p.run()
}

// bcastNode is the host-aware broadcast, for blocking calls on a
// communicator spanning hosts:
//
//  1. on the root's host, the root broadcasts to its host (so its leader
//     has the data);
//  2. the leaders broadcast among themselves from the root's leader
//     (binomial tree, or scatter + allgather for long messages);
//  3. on every other host, the leader broadcasts to its host.
//
// Steps 1 and 3 go through the host's shared-memory region sn when it has
// one (nil: with messages). Only step 2 crosses hosts: ⌈lg h⌉ rounds among
// h leaders instead of ⌈lg p⌉ rounds that mostly cross hosts.
func bcastNode[T mpi.Numeric](k call, h *hierarchy, buf []T, root int, sn *shmColl) error {
	kn := k.on(h.node)
	rootLeader := h.leaderOf[root]
	onRootHost := h.leaderOf[k.rank()] == rootLeader
	host := func(from int) error {
		switch {
		case sn == nil:
			return bcastBinomial(kn, buf, from)
		case sn.fits(len(buf) * sizeOf[T]()):
			return shmBcastOp(sn, buf, from)
		case sn.cma:
			return shmBcastCMA(sn, buf, from)
		}
		return bcastBinomial(kn, buf, from)
	}
	if onRootHost {
		nroot, err := k.c.TranslateRank(root, h.node)
		if err != nil {
			return err
		}
		if err := host(nroot); err != nil {
			return err
		}
	}
	if h.leaders != nil && h.leaders.Size() > 1 {
		kl := k.on(h.leaders)
		lroot := h.leaderRank(rootLeader)
		var err error
		if sizeOf[T]()*len(buf) >= bcastLongBytes && kl.size() >= bcastMinRanks {
			err = bcastScatterAllgather(kl, buf, lroot)
		} else {
			err = bcastBinomial(kl, buf, lroot)
		}
		if err != nil {
			return err
		}
	}
	if !onRootHost {
		return host(0)
	}
	return nil
}

// Ibcast starts a Bcast and returns its Request. buf must not be read or
// modified until the request completes.
func Ibcast[T mpi.Numeric](c *mpi.Comm, buf []T, root int) *mpi.Request {
	p, err := planBcast(c, buf, root)
	return start(c, p.run, err)
}

// bcastPlan is a checked Bcast: a value, so that a blocking Bcast
// allocates nothing for it.
type bcastPlan[T mpi.Numeric] struct {
	k     call
	buf   []T
	root  int
	alone bool // a communicator of one rank: nothing to do
}

func planBcast[T mpi.Numeric](c *mpi.Comm, buf []T, root int) (bcastPlan[T], error) {
	const op = "bcast"
	if err := checkComm(op, c); err != nil {
		return bcastPlan[T]{}, err
	}
	if err := checkRoot(op, c, root); err != nil {
		return bcastPlan[T]{}, err
	}
	if c.Size() == 1 {
		return bcastPlan[T]{alone: true}, nil
	}
	return bcastPlan[T]{k: newCall(c), buf: buf, root: root}, nil
}

// run carries out the planned Bcast with the algorithm its size calls for.
func (p bcastPlan[T]) run() error {
	const op = "bcast"
	if p.alone {
		return nil
	}
	long := sizeOf[T]()*len(p.buf) >= bcastLongBytes
	if long {
		if err := agreeRoot(p.k, p.root, stepBcast); err != nil {
			return wrap(op, err)
		}
	}
	if long && p.k.size() >= bcastMinRanks {
		return wrap(op, bcastScatterAllgather(p.k, p.buf, p.root))
	}
	return wrap(op, bcastBinomial(p.k, p.buf, p.root))
}

// sizeOf returns the size in bytes of one T.
func sizeOf[T mpi.Numeric]() int { return int(reflect.TypeFor[T]().Size()) }
