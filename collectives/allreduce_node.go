package collectives

import (
	"os"
	"runtime"

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
	small := sn != nil && sn.fits(len(buf)*sizeOf[T]())
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
	// uniform: every host has the same number of c's ranks; then cross
	// holds the ranks of this rank's node rank on every host, in c's order
	// (allreduceNodeSliced).
	uniform bool
	cross   *mpi.Comm
	// shmAll: every host's node communicator of several ranks has a
	// shared-memory region with cross-memory reads.
	shmAll bool
	// leaderOf[r]: the rank in c of the leader of rank r's host (when
	// useful). Leaders are numbered in c's order in the leaders
	// communicator, so a leader's rank there is its index among them.
	leaderOf []int
}

// leaderRank returns the rank in the leaders communicator of the leader
// whose rank in c is l.
func (h *hierarchy) leaderRank(l int) int {
	n := 0
	for r, lr := range h.leaderOf {
		if r == lr && r < l {
			n++
		}
	}
	return n
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

// Hierarchies are cached per communicator (stateOf). The sub-communicators
// are never shown to users; only this package's hierarchical algorithms
// talk on them, with the tags of the collective call on the parent
// communicator, so their tags never collide.

// hierarchyOf returns c's cached hierarchy, building it on the first call:
// that is collective over c (SplitType and Split, then a small agreement),
// so every rank must reach it in the same call, which the dispatchers
// ensure by calling it for the same arguments on every rank, on the
// caller's goroutine.
func hierarchyOf(c *mpi.Comm) (*hierarchy, error) {
	st := stateOf(c)
	if h := st.h.Load(); h != nil {
		return h, nil
	}
	h, err := newHierarchy(c, func() (*mpi.Comm, error) { return c.SplitType(mpi.TypeShared) })
	if err != nil {
		return nil, err
	}
	st.h.Store(h)
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
	// The node's shared-memory region (made now, collectively over the
	// node): whether every host has one with cross-memory reads decides
	// allreduceNodeSliced, a choice that must be the same on every host.
	shmOK := 1
	if node.Size() > 1 {
		if sn := shmOf(node); sn == nil || !sn.cma {
			shmOK = 0
		}
	}
	flags := []int{contiguous, -node.Size(), node.Size(), shmOK}
	if leaders != nil {
		if err := allreduceRD(call{c: leaders.Collective()}, flags, Min[int]); err != nil {
			return nil, err
		}
	}
	if err := bcastBinomial(call{c: node.Collective()}, flags, 0); err != nil {
		return nil, err
	}
	h := &hierarchy{node: node, leaders: leaders, useful: -flags[1] > 1, ordered: flags[0] == 1,
		uniform: -flags[1] == flags[2], shmAll: flags[3] == 1}
	if h.useful {
		// Every rank's host leader, for the host-aware Bcast: each rank
		// contributes its own, around a ring on c (sequence number 0 is
		// free there too: NextSeq never draws it).
		h.leaderOf = make([]int, c.Size())
		h.leaderOf[c.Rank()] = first
		block := func(i int) (int, int) { return i, i + 1 }
		if err := allgatherRing(call{c: c.Collective()}, h.leaderOf, 0, block, stepAllgather); err != nil {
			return nil, err
		}
	}
	if h.useful && h.uniform {
		// The ranks of one node rank on every host, in c's order.
		if h.cross, err = c.Split(node.Rank(), c.Rank()); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// allreduceNodeSliced is the host-aware allreduce for long vectors, when
// every host has the same number m of ranks and the node communicator has
// a shared-memory region with cross-memory reads (sn.cma). Each local rank
// owns slice i (of m, blockStart) of the vector:
//
//  1. reduce-scatter on the host: rank i reads slice i of every local
//     rank's vector straight out of its memory (process_vm_readv) and
//     combines them in node order;
//  2. rank i allreduces its slice with the ranks of node rank i on the
//     other hosts (hierarchy.cross), with the flat algorithm for its size;
//  3. allgather on the host: every rank reads the other m−1 final slices
//     straight out of their owners' vectors.
//
// Unlike allreduceNode, every rank takes part in the traffic between hosts
// (a slice each, in parallel) and no rank moves whole vectors through a
// tree. Order: node order within a host, then the cross communicator's
// (host) order; rank order when hierarchy.ordered. Cost, h hosts of m
// ranks, n bytes: 2·(m−1)/m·nβ_cma + (m−1)/m·nγ + the flat allreduce of
// n/m bytes over h ranks, plus three rounds of waiting on the host.
//
// A rank whose step fails still takes part in the region's rounds, posting
// a failure that the others report, so that nobody waits forever on it.
func allreduceNodeSliced[T mpi.Numeric](k call, h *hierarchy, buf []T, op Op[T], commutative bool, sn *shmColl) error {
	m, me, n, sz := sn.p, sn.me, len(buf), sizeOf[T]()
	lo, hi := blockStart(n, m, me), blockStart(n, m, me+1)
	acc, sa := getScratch[T](hi - lo)
	defer putScratch(sa)
	tmp, st := getScratch[T](hi - lo)
	defer putScratch(st)
	bb := bytesOf(buf)
	typ := typeCode[T]()
	seqA, seqB, seqC := sn.next(), sn.next(), sn.next()
	desc := func(seq uint64, failed bool) uint64 {
		if failed {
			return shmDesc(seq, shmFailed, typ, 0, n)
		}
		return shmDesc(seq, shmAllreduce, typ, 0, n)
	}
	if err := sn.reserve(seqA); err != nil {
		return err
	}
	sn.setAddr(seqA, bb)
	sn.post(seqA, desc(seqA, false))
	// 1. acc = x₀ ⊕ (x₁ ⊕ (… ⊕ xₘ₋₁)) on slice [lo, hi).
	var err error
	for j := m - 1; j >= 0 && err == nil; j-- {
		x := buf[lo:hi]
		if j != me {
			if err = sn.await(j, seqA, desc(seqA, false)); err != nil {
				break
			}
			if err = readFrom(sn.pid(j), sn.getAddr(seqA, j)+uintptr(lo*sz), bytesOf(tmp)); err != nil {
				break
			}
			x = tmp
		}
		if j == m-1 {
			copy(acc, x)
		} else {
			op(acc, x)
		}
	}
	// Nobody reads this rank's own slice: it may take the result.
	if err == nil {
		copy(buf[lo:hi], acc)
		// 2.
		if h.cross != nil && h.cross.Size() > 1 {
			err = allreduceFlat(k.on(h.cross), buf[lo:hi], op, commutative)
		}
	}
	// 3.
	if rerr := sn.reserve(seqB); rerr != nil {
		return rerr
	}
	sn.post(seqB, desc(seqB, err != nil))
	if err == nil {
		for i := 1; i < m && err == nil; i++ {
			j := (me + i) % m
			if err = sn.await(j, seqB, desc(seqB, false)); err == nil {
				jlo, jhi := blockStart(n, m, j), blockStart(n, m, j+1)
				err = readFrom(sn.pid(j), sn.getAddr(seqA, j)+uintptr(jlo*sz), bb[jlo*sz:jhi*sz])
			}
		}
	}
	// Nobody returns, and so releases its vector, before all have read.
	if rerr := sn.reserve(seqC); rerr != nil {
		return rerr
	}
	sn.post(seqC, desc(seqC, err != nil))
	if err == nil { // after a failure the others may be elsewhere: do not wait
		err = sn.awaitAll(seqC, desc(seqC, false))
	}
	runtime.KeepAlive(buf)
	runtime.KeepAlive(sn)
	return err
}
