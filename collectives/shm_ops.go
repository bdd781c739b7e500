package collectives

import (
	"runtime"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// The shared-memory algorithms (see shm.go for the region and its
// protocol). Costs, for p ranks of one host and n bytes (n ≤ shmSlot): a
// cache-line transfer c (≈0.1 µs between cores), a copy through the region
// β per byte, γ per byte of reduction. Every rank writes at most one slot
// and reads the others' slots directly: one round of waiting, never lg p.
// When the host runs more ranks than CPUs, that one round is what matters:
// a waiting rank yields the CPU at once, and the call completes as soon as
// every rank has been scheduled once.

// fitsShm reports whether n bytes fit one slot.
func fitsShm(n int) bool { return n <= shmSlot }

// barrier: post, then wait for every rank's post. Cost: c + (p−1) loads.
func (s *shmColl) barrier() error {
	seq := s.next()
	d := shmDesc(seq, shmBarrier, 0, 0, 0)
	err := s.postOnly(seq, d)
	if err == nil {
		err = s.awaitAll(seq, d)
	}
	runtime.KeepAlive(s)
	return err
}

// shmBcastOp: the root copies buf into its slot and posts; the others post
// their arrival, wait for the root's and copy out. The root does not wait.
// Cost: 2nβ + c.
func shmBcastOp[T mpi.Numeric](s *shmColl, buf []T, root int) error {
	seq := s.next()
	d := shmDesc(seq, shmBcast, typeCode[T](), root, len(buf))
	err := s.reserve(seq)
	switch {
	case err != nil:
	case s.me == root:
		copy(s.slot(seq, s.me), bytesOf(buf))
		s.post(seq, d)
	default:
		s.post(seq, d)
		if err = s.await(root, seq, d); err == nil {
			copy(buf, view[T](s.slot(seq, root), len(buf)))
		}
	}
	runtime.KeepAlive(s)
	return err
}

// shmReduceOp: every rank copies its vector into its slot and posts; the
// root (recv != nil only there) reduces the slots in rank order, taking
// each as soon as its rank has posted:
//
//	recv = x₀ ⊕ (x₁ ⊕ (… ⊕ xₚ₋₁))
//
// Non-roots return at once. Cost at the root: c + p·n(β + γ).
func shmReduceOp[T mpi.Numeric](s *shmColl, kind int, in, recv []T, op Op[T], root int) error {
	seq := s.next()
	n := len(in)
	d := shmDesc(seq, kind, typeCode[T](), root, n)
	if err := s.reserve(seq); err != nil {
		return err
	}
	copy(s.slot(seq, s.me), bytesOf(in))
	s.post(seq, d)
	var err error
	if recv != nil {
		err = s.combine(seq, d, func(j int, first bool) {
			x := view[T](s.slot(seq, j), n)
			if first {
				copy(recv, x)
			} else {
				op(recv, x)
			}
		})
	}
	runtime.KeepAlive(s)
	return err
}

// combine calls f for ranks p−1 down to 0 (first is true for p−1), each
// once that rank has posted call seq.
func (s *shmColl) combine(seq, d uint64, f func(j int, first bool)) error {
	for j := s.p - 1; j >= 0; j-- {
		if j != s.me {
			if err := s.await(j, seq, d); err != nil {
				return err
			}
		}
		f(j, j == s.p-1)
	}
	return nil
}

// shmAllreduceOp is shmReduceOp with every rank reducing: each computes the
// same sum in the same order, so the results are bitwise identical.
// Cost: c + p·n(β + γ) per rank.
func shmAllreduceOp[T mpi.Numeric](s *shmColl, send, recv []T, op Op[T]) error {
	if send == nil {
		send = recv
	}
	return shmReduceOp(s, shmAllreduce, send, recv, op, 0)
}

// shmAlltoallOp: every rank copies its whole send buffer (p blocks of b
// elements) into its slot and posts; then takes block r of every rank's
// slot. Cost: c + 2·p·b(β).
func shmAlltoallOp[T mpi.Numeric](s *shmColl, send, recv []T, b int) error {
	seq := s.next()
	d := shmDesc(seq, shmAlltoall, typeCode[T](), 0, b)
	if err := s.reserve(seq); err != nil {
		return err
	}
	me := s.me
	copy(s.slot(seq, me), bytesOf(send))
	s.post(seq, d)
	copy(recv[me*b:(me+1)*b], send[me*b:(me+1)*b])
	err := s.each(seq, d, func(j int) {
		copy(recv[j*b:(j+1)*b], view[T](s.slot(seq, j), len(send))[me*b:(me+1)*b])
	})
	runtime.KeepAlive(s)
	return err
}

// each calls f for every other rank once it has posted call seq, in rank
// order starting after this rank's own.
func (s *shmColl) each(seq, d uint64, f func(j int)) error {
	for i := 1; i < s.p; i++ {
		j := (s.me + i) % s.p
		if err := s.await(j, seq, d); err != nil {
			return err
		}
		f(j)
	}
	return nil
}

// shmGatherOp gathers blocks of b elements: every rank copies its block
// (own) into its slot and posts; on gather ranks (recv != nil: the root of
// Gather, every rank of Allgather) the blocks are copied out in turn.
// Cost: c + p·b(β) per gathering rank.
func shmGatherOp[T mpi.Numeric](s *shmColl, kind int, own, recv []T, b, root int) error {
	seq := s.next()
	d := shmDesc(seq, kind, typeCode[T](), root, b)
	if err := s.reserve(seq); err != nil {
		return err
	}
	copy(s.slot(seq, s.me), bytesOf(own))
	s.post(seq, d)
	var err error
	if recv != nil {
		copy(recv[s.me*b:(s.me+1)*b], own) // a no-op in place
		err = s.each(seq, d, func(j int) {
			copy(recv[j*b:(j+1)*b], view[T](s.slot(seq, j), b))
		})
	}
	runtime.KeepAlive(s)
	return err
}

// shmScatterOp: the root copies its p blocks of b elements into its slot
// and posts; the others post their arrival, wait for the root's and copy
// their block into own. Cost: c + 2·p·b(β) at the root.
func shmScatterOp[T mpi.Numeric](s *shmColl, send, own []T, b, root int) error {
	seq := s.next()
	d := shmDesc(seq, shmScatter, typeCode[T](), root, b)
	err := s.reserve(seq)
	switch {
	case err != nil:
	case s.me == root:
		copy(s.slot(seq, s.me), bytesOf(send))
		s.post(seq, d)
		copy(own, send[root*b:(root+1)*b])
	default:
		s.post(seq, d)
		if err = s.await(root, seq, d); err == nil {
			copy(own, view[T](s.slot(seq, root), s.p*b)[s.me*b:(s.me+1)*b])
		}
	}
	runtime.KeepAlive(s)
	return err
}
