package collectives

import (
	"os"
	"runtime"
	"sync"
	"weak"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// allreduceNode is the host-aware allreduce (Open MPI's han, MPICH's smp):
//
//  1. each host reduces its ranks' vectors to its leader (its lowest rank)
//     over the node communicator, a binomial tree in rank order;
//  2. the leaders allreduce the host partials among themselves with the
//     flat algorithm for the vector's size (allreduceFlat);
//  3. each leader broadcasts the result to its host (binomial tree).
//
// Only the leaders' traffic crosses hosts: one vector's worth per host
// instead of per rank. Within a host the traffic goes through the node
// communicator, which the runtime routes over shared memory when it can.
//
// Order: within a host in rank order; across hosts in the leaders' order.
// That is rank order when every host holds a contiguous range of ranks
// (hierarchy.ordered); otherwise the dispatcher uses this only for
// commutative ops. Results are the same on all ranks (step 3 copies) and
// reproducible for the same host layout.
//
// Cost, with h hosts of m ranks: 2·⌈lg m⌉·(α_shm + nβ_shm) + ⌈lg m⌉·nγ +
// the cost of the flat allreduce over h leaders.
//
// sn, the node communicator's shared-memory region (blocking calls only;
// nil for Iallreduce), carries steps 1 and 3 for vectors that fit a slot:
// one round of waiting on the host instead of lg m.
func allreduceNode[T mpi.Numeric](k call, h *hierarchy, buf []T, op Op[T], commutative bool, sn *shmColl) error {
	kn := k.on(h.node)
	small := sn != nil && fitsShm(len(buf)*sizeOf[T]())
	var leader []T
	if h.leaders != nil {
		leader = buf
	}
	switch {
	case small:
		if err := shmReduceOp(sn, shmReduce, buf, leader, op, 0); err != nil {
			return err
		}
	default:
		if err := sn.arrival(shmReduce, typeCode[T](), 0, len(buf)); err != nil {
			return err
		}
		if err := reduceBinomial(kn, buf, buf, op, 0, false); err != nil {
			return err
		}
	}
	if h.leaders != nil {
		if err := allreduceFlat(k.on(h.leaders), buf, op, commutative); err != nil {
			return err
		}
	}
	if small {
		return shmBcastOp(sn, buf, 0)
	}
	return bcastBinomial(kn, buf, 0)
}

// A hierarchy is the host layout of a communicator, built once per
// communicator by hierarchyOf and cached.
type hierarchy struct {
	node    *mpi.Comm // the ranks of c on this rank's host, in c's order
	leaders *mpi.Comm // node rank 0 of every host, in c's order; nil elsewhere
	// useful: c spans several hosts and some host has several of its ranks.
	useful bool
	// ordered: every host holds a contiguous range of c's ranks, so host
	// order followed by node order is rank order.
	ordered bool
}

// EnvHierarchy names the environment variable that turns the host-aware
// algorithms off: GORUN_COLL_HIERARCHY=off makes every communicator look
// like one host, so the dispatchers pick the flat algorithms (for
// comparison; see the package documentation). gorun gives every rank the
// same environment, which this needs: the ranks must agree.
const EnvHierarchy = "GORUN_COLL_HIERARCHY"

// hierarchyOff is EnvHierarchy == "off", read once at start-up; tests set
// it.
var hierarchyOff = os.Getenv(EnvHierarchy) == "off"

// hierarchies caches the hierarchy of each communicator, keyed by a weak
// pointer so that the entry goes away with the communicator (a cleanup
// deletes it). The sub-communicators are never shown to users; only this
// package's hierarchical algorithms talk on them, with the tags of the
// collective call on the parent communicator, so their tags never collide.
var hierarchies sync.Map // weak.Pointer[mpi.Comm] → *hierarchy

// hierarchyOf returns c's cached hierarchy, building it on the first call:
// that is collective over c (SplitType and Split, then a small agreement),
// so every rank must reach it in the same call, which the dispatchers
// ensure by calling it for the same arguments on every rank, on the
// caller's goroutine.
func hierarchyOf(c *mpi.Comm) (*hierarchy, error) {
	key := weak.Make(c)
	if h, ok := hierarchies.Load(key); ok {
		return h.(*hierarchy), nil
	}
	h, err := newHierarchy(c, func() (*mpi.Comm, error) { return c.SplitType(mpi.TypeShared) })
	if err != nil {
		return nil, err
	}
	hierarchies.Store(key, h)
	runtime.AddCleanup(c, func(key weak.Pointer[mpi.Comm]) { hierarchies.Delete(key) }, key)
	return h, nil
}

// newHierarchy builds the hierarchy of c from the node communicator split
// returns (SplitType in production; tests pass a Split that fakes hosts).
// Collective over c, unless hierarchyOff: then it returns the hierarchy of
// one host at once, on every rank.
func newHierarchy(c *mpi.Comm, split func() (*mpi.Comm, error)) (*hierarchy, error) {
	if hierarchyOff {
		return &hierarchy{}, nil
	}
	node, err := split()
	if err != nil {
		return nil, err
	}
	if node.Size() == c.Size() { // one host: nothing to gain; same answer everywhere
		if err := node.Free(); err != nil {
			return nil, err
		}
		return &hierarchy{}, nil
	}
	color := mpi.Undefined
	if node.Rank() == 0 {
		color = 0
	}
	leaders, err := c.Split(color, c.Rank())
	if err != nil {
		return nil, err
	}
	// Is this host's range of ranks contiguous? Every member computes the
	// same answer for its host.
	contiguous := 1
	first, err := node.TranslateRank(0, c)
	if err != nil {
		return nil, err
	}
	for i := 1; i < node.Size(); i++ {
		cr, err := node.TranslateRank(i, c)
		if err != nil {
			return nil, err
		}
		if cr != first+i {
			contiguous = 0
		}
	}
	// Agree: min over hosts of [contiguous, −node size]. The new
	// communicators carry no traffic yet, so sequence number 0 (never drawn
	// by NextSeq) is free there.
	flags := []int{contiguous, -node.Size()}
	if leaders != nil {
		if err := allreduceRD(call{c: leaders.Collective()}, flags, Min[int]); err != nil {
			return nil, err
		}
	}
	if err := bcastBinomial(call{c: node.Collective()}, flags, 0); err != nil {
		return nil, err
	}
	return &hierarchy{node: node, leaders: leaders, useful: -flags[1] > 1, ordered: flags[0] == 1}, nil
}
