// Package collectives implements MPI's collective operations over the
// point-to-point calls of package mpi: Barrier, Bcast, Reduce, Allreduce,
// Gather(v), Scatter(v), Allgather(v), Alltoall(v), Scan, Exscan,
// ReduceScatter, their value forms BcastValue and GatherValue (any Go value,
// through msgpack), MinLoc/MaxLoc reductions (AllreduceLoc, ReduceLoc), and
// non-blocking forms (Ibarrier, Ibcast, Ireduce, Iallreduce, Iallgather).
//
//	err := collectives.Allreduce(world, local, global, collectives.Sum)
//	err = collectives.Bcast(world, params, 0)
//	err = collectives.Barrier(world)
//
// Go has no generic methods, so the operations are package-level generic
// functions taking the communicator first; the element type is inferred.
// Counts and displacements are in elements, never bytes.
//
// # Calling rules
//
// A collective is called by every rank of the communicator, with matching
// arguments (same lengths, same root, same op), and all ranks call the
// collectives of one communicator in the same order. Blocking collectives on
// one communicator must be called from one goroutine at a time; the
// non-blocking forms may be outstanding several at a time (each is tagged
// with its own call number, see tags.go), started in the same order on every
// rank. Buffers belong to the call until it returns (or its Request
// completes): do not read or write them meanwhile. send buffers are never
// modified. In-place forms use nil for the buffer MPI would mark
// MPI_IN_PLACE; each function says which.
//
// All traffic runs on the communicator's collective context (Comm.Collective),
// so it never matches user point-to-point messages, with tags built from
// Comm.NextSeq so that successive and overlapping calls never match each
// other's messages.
//
// # Operations and order
//
// An Op[T] is func(inout, in []T) with MPI's convention inout = in ⊕ inout,
// in coming from the lower ranks. Sum, Prod, Max, Min, the logical LAnd,
// LOr, LXor and the bitwise BAnd, BOr, BXor are provided (the logical and
// bitwise ones for integers only, Max and Min for non-complex types).
// Reductions combine in rank order, so any associative op works, commutative
// or not, and each algorithm's bracketing depends only on the rank count,
// the vector length (and the root, the host layout): floating-point results
// are bitwise identical on every rank and from run to run. For the
// package's own ops, which it knows to be commutative, some algorithms use
// another fixed order (see Op).
//
// # Algorithms
//
// One file per algorithm, its cost in its comment (α latency, β time per
// byte, γ compute per byte, n bytes, p ranks); one dispatcher per operation
// validates arguments, handles one rank alone, and picks by size and rank
// count with unexported thresholds:
//
//	(one host)     blocking Barrier, Bcast, Reduce, Allreduce, Gather,
//	               Scatter, Allgather, Alltoall of ≤ 8 KiB per rank (less
//	               beyond 16 ranks): through a shared-memory region of the
//	               communicator (shm.go); larger Bcast, Allgather, Alltoall
//	               copy straight between the ranks' buffers (process_vm_readv)
//	Barrier        dissemination; across hosts, host-aware (barrier.go)
//	Bcast          binomial tree; scatter + ring allgather ≥ 128 KiB, p ≥ 3;
//	               across hosts, host-aware (bcast.go)
//	Reduce         binomial tree (rank order, to rank 0 then root);
//	               Rabenseifner ≥ 32 KiB (commutative: reduce-scatter + gather)
//	Allreduce      recursive doubling < 32 KiB; Rabenseifner; ring (commutative, p not 2ᵏ);
//	               host-aware (reduce on host, leaders allreduce, bcast on host;
//	               long vectors on hosts of equal rank counts: every local
//	               rank reduces and exchanges one slice, allreduce_node.go)
//	Gather/Scatter binomial tree < 2 KiB per rank; linear
//	Allgather      recursive doubling (p = 2ᵏ, < 64 KiB); ring
//	Alltoall       pairwise exchange; in place, pairwise swaps
//	Scan/Exscan    recursive doubling
//	ReduceScatter  ring (commutative); reduce + scatter
//
// GORUN_COLL_HIERARCHY=off (EnvHierarchy, read once when the program
// starts; every rank must see the same value, as under gorun) turns the
// host-aware algorithms off: communicators spanning hosts then use the
// flat algorithms too, for comparison (examples/bench/hier.sh measures
// both). Any other value, or none, leaves them on. GORUN_COLL_SHM=off,
// read the same way, keeps the collectives of one-host communicators off
// shared memory (point-to-point algorithms only), for comparison.
//
// # Errors
//
// Errors carry the prefix "collectives: <operation>:" and wrap the mpi
// sentinels (errors.Is(err, mpi.ErrRank) for a bad root, mpi.ErrCount for
// bad lengths, mpi.ErrPeerLost, mpi.ErrAborted …). Nothing panics on a
// caller's mistake. Ranks that disagree on lengths, element types or
// per-rank counts get ErrMismatch on at least one rank, from a receive of
// unexpected size or type (every internal receive is exact); their
// partners may then wait until the job aborts. Different roots: the
// long-message paths of Bcast, Reduce, Gather and Scatter, and Gatherv,
// Scatterv, BcastValue and GatherValue at every size, start with a root
// check (one small message per rank around a ring) that fails with
// ErrMismatch on at least one rank. The short paths skip it, so as not to
// add a message to small calls: there a receive that is alone in its phase
// is posted for any source and fails with ErrMismatch when the message
// comes from another rank than the receiver's root implies (short Bcast
// and Scatter), which catches some disagreements; others (a rank that
// wrongly believes it is the root, short Reduce and Gather) may hang until
// the job is aborted (under mpitest, until a failing rank aborts it). On
// one host, where the blocking calls go through shared memory, each call's
// kind, root, element type and count are compared with those of every
// rank it waits for (shm.go). Not detected: different reduction operations
// on different ranks (Sum on one, Max on another).
package collectives
