package collectives

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// ErrMismatch means the ranks called a collective with arguments that do
// not agree (element counts, element types, per-rank counts of the v-forms,
// roots), detected when a message of another size or type than expected
// arrived, a message came from another rank than the tree of the caller's
// root implies, or the root check of a long rooted call failed (see
// agreeRoot).
// When the underlying receive failed, the mpi sentinel (mpi.ErrTruncate,
// mpi.ErrType) is wrapped too and stays reachable with errors.Is.
var ErrMismatch = errors.New("collectives: arguments differ across ranks")

// Tags. All traffic of package collectives runs on c.Collective(), so user
// point-to-point messages never match it. A tag is
//
//	(seq mod 2²⁰) << 8 | step
//
// where seq is drawn from c.NextSeq once per collective call, on the calling
// goroutine (so every rank draws the same number for the same call, also for
// non-blocking calls), and step (8 bits) separates the phases of one
// algorithm. The largest tag is below 2²⁸, under the 2³⁰ from which package
// mpi reserves the collective context's tags for itself. Within one phase a
// pair of ranks may exchange several messages on one tag: messages between
// two ranks on one tag are non-overtaking and the algorithms post their
// receives in the order the peer sends, so they match in order. Messages of
// 2²⁰ overlapping non-blocking collectives would be needed to alias.
const (
	seqBits  = 20
	stepBits = 8
)

// Step numbers, one per phase; distinct across the phases that can run on
// one communicator within one call. Alternative algorithms for one
// operation deliberately share the tag of their first exchange (stepBcast
// for the binomial broadcast and the scatter of the long one; stepRD for
// recursive doubling and the reduce-scatters of Rabenseifner and the ring;
// stepFold for both foldings): ranks whose lengths differ may pick
// different algorithms, and a shared tag turns that into a size mismatch a
// receiver detects instead of a silent hang.
const (
	stepBarrier = iota + 1
	stepBcast
	stepBcastAllgather
	stepReduce
	stepReduceRoot
	stepFold
	stepRD
	stepUnfold
	stepAG
	stepGather
	stepScatter
	stepAllgather
	stepAlltoall
	stepScan
	stepValue
	stepReduceGather
)

// call carries what every message of one collective call needs: the
// collective view of the communicator and the call's sequence number.
type call struct {
	c   *mpi.Comm // c.Collective() of the user's communicator
	seq uint64
}

// newCall draws the sequence number of a new collective call on c. It must
// run on the goroutine that issued the call, before any goroutine starts,
// so that all ranks draw the same number for the same call.
func newCall(c *mpi.Comm) call {
	return call{c: c.Collective(), seq: c.NextSeq()}
}

// on returns the same call on another communicator (a node or leaders
// communicator of a hierarchical algorithm): the same seq keeps the tags
// unique there too, since only this package uses those communicators.
func (k call) on(c *mpi.Comm) call { return call{c: c.Collective(), seq: k.seq} }

func (k call) tag(step int) int {
	return int(k.seq%(1<<seqBits))<<stepBits | step&(1<<stepBits-1)
}

func (k call) rank() int { return k.c.Rank() }
func (k call) size() int { return k.c.Size() }

// send sends buf to dst with the call's tag for step.
func send[T mpi.Numeric](k call, buf []T, dst, step int) error {
	return mpi.Send(k.c, buf, dst, k.tag(step))
}

// recv receives exactly len(buf) elements from src: a message of another
// length or element type fails with ErrMismatch.
func recv[T mpi.Numeric](k call, buf []T, src, step int) error {
	st, err := mpi.Recv(k.c, buf, src, k.tag(step))
	return checkRecv(st, err, len(buf))
}

// recvFrom is recv for a step on which this rank receives exactly one
// message per call, from src in a tree built around the root: it posts the
// receive for any source, so that a message from another rank (one that
// built its tree around another root) is taken and reported as ErrMismatch
// instead of lying unmatched while this rank waits for src. It costs
// nothing over recv.
func recvFrom[T mpi.Numeric](k call, buf []T, src, step int) error {
	st, err := mpi.Recv(k.c, buf, mpi.AnySource, k.tag(step))
	if err == nil && st.Source != src {
		return wrongSender(st.Source, src)
	}
	return checkRecv(st, err, len(buf))
}

// wrongSender reports a message from another rank than the caller's root
// implies.
func wrongSender(got, want int) error {
	return fmt.Errorf("%w: message from rank %d where the root implies rank %d (ranks disagree on the root?)",
		ErrMismatch, got, want)
}

// agreeRoot checks that every rank passed the same root: each rank sends
// its root to its right neighbour and compares it with the one from its
// left. Roots that are not all equal differ between some pair of
// neighbours, so at least one rank fails with ErrMismatch (its partners in
// the collective may then wait until the job aborts). One small message
// per rank, one α on the critical path: the long-message paths of the
// rooted collectives and their v and value forms call it first, the short
// paths do not (they rely on recvFrom, which catches only some
// disagreements). step is the step of the first exchange of the algorithm
// it precedes, so that a rank that took a short-path algorithm instead
// (its count differs) meets a message of the wrong size or type.
func agreeRoot(k call, root, step int) error {
	buf, sc := getScratch[int64](2)
	defer putScratch(sc)
	p, r := k.size(), k.rank()
	left := (r - 1 + p) % p
	buf[0] = int64(root)
	if err := sendrecv(k, buf[:1], (r+1)%p, buf[1:2], left, step); err != nil {
		return err
	}
	if buf[1] != buf[0] {
		return fmt.Errorf("%w: root %d here, %d on rank %d", ErrMismatch, root, buf[1], left)
	}
	return nil
}

// sendrecv sends sbuf to dst and receives exactly len(rbuf) elements from
// src, on the tag of step.
func sendrecv[T mpi.Numeric](k call, sbuf []T, dst int, rbuf []T, src, step int) error {
	t := k.tag(step)
	st, err := mpi.Sendrecv(k.c, sbuf, dst, t, rbuf, src, t)
	return checkRecv(st, err, len(rbuf))
}

// irecv starts receiving exactly len(buf) elements; finish it with waitRecvs.
func irecv[T mpi.Numeric](k call, buf []T, src, step int) (*mpi.Request, error) {
	return mpi.Irecv(k.c, buf, src, k.tag(step))
}

// waitRecvs waits for receives started by irecv and checks that each got
// exactly want[i] elements. It waits for all of them even after a failure.
func waitRecvs(reqs []*mpi.Request, want []int) error {
	var errs []error
	for i, q := range reqs {
		if q == nil {
			continue
		}
		st, err := q.Wait()
		if err := checkRecv(st, err, want[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkRecv turns a receive's outcome into the package's error: size and
// type disagreements become ErrMismatch (wrapping mpi's sentinel).
func checkRecv(st mpi.Status, err error, want int) error {
	if err != nil {
		if errors.Is(err, mpi.ErrTruncate) || errors.Is(err, mpi.ErrType) {
			return fmt.Errorf("%w: %w", ErrMismatch, err)
		}
		return err
	}
	if st.Count != want {
		return fmt.Errorf("%w: received %d elements from rank %d (tag %d), want %d",
			ErrMismatch, st.Count, st.Source, st.Tag, want)
	}
	return nil
}

// wrap gives an error the package prefix and the operation's name.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("collectives: %s: %w", op, err)
}

// checkComm validates the communicator every collective takes.
func checkComm(op string, c *mpi.Comm) error {
	if c == nil {
		return fmt.Errorf("collectives: %s: nil communicator", op)
	}
	return nil
}

// checkRoot validates a root argument.
func checkRoot(op string, c *mpi.Comm, root int) error {
	if root < 0 || root >= c.Size() {
		return fmt.Errorf("collectives: %s: root %d is not in [0, %d): %w", op, root, c.Size(), mpi.ErrRank)
	}
	return nil
}

// countErr reports a bad buffer length or count argument.
func countErr(op, format string, args ...any) error {
	return fmt.Errorf("collectives: %s: %s: %w", op, fmt.Sprintf(format, args...), mpi.ErrCount)
}

// checkLayout validates counts and displacements of a v-form against a
// buffer of length n and p ranks; blocks a collective writes (disjoint) must
// not overlap.
func checkLayout(op, what string, counts, displs []int, n, p int, disjoint bool) error {
	if len(counts) != p || len(displs) != p {
		return countErr(op, "%s: %d counts and %d displacements for %d ranks", what, len(counts), len(displs), p)
	}
	for i := range p {
		if counts[i] < 0 || displs[i] < 0 || displs[i] > n || counts[i] > n-displs[i] {
			return countErr(op, "%s: block %d (count %d at %d) outside a buffer of %d", what, i, counts[i], displs[i], n)
		}
	}
	if !disjoint {
		return nil
	}
	order := make([]int, 0, p)
	for i := range p {
		if counts[i] > 0 {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(displs[a], displs[b]) })
	for j := 1; j < len(order); j++ {
		a, b := order[j-1], order[j]
		if displs[a]+counts[a] > displs[b] {
			return countErr(op, "%s: blocks %d and %d overlap", what, a, b)
		}
	}
	return nil
}

// blockStart returns where block i of n elements split into p nearly equal
// blocks starts; block i is [blockStart(n, p, i), blockStart(n, p, i+1)).
func blockStart(n, p, i int) int {
	q, r := n/p, n%p
	return i*q + min(i, r)
}

// pof2Below returns the largest power of two not above p (p ≥ 1).
func pof2Below(p int) int {
	m := 1
	for m*2 <= p {
		m *= 2
	}
	return m
}
