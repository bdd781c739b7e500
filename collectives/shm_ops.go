package collectives

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// The shared-memory algorithms (see shm.go for the region and its
// protocol). Costs, for p ranks of one host and n bytes (n ≤ slotBytes(p)): a
// cache-line transfer c (≈0.1 µs between cores), a copy through the region
// β per byte, γ per byte of reduction. Every rank writes at most one slot
// and reads the others' slots directly: one round of waiting, never lg p.
// When the host runs more ranks than CPUs, that one round is what matters:
// a waiting rank yields the CPU at once, and the call completes as soon as
// every rank has been scheduled once.

// fits reports whether n bytes fit one slot.
func (s *shmColl) fits(n int) bool { return n <= s.slotN }

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
		copy(s.slot(seq, s.me, len(buf)*sizeOf[T]()), bytesOf(buf))
		s.post(seq, d)
	default:
		s.post(seq, d)
		if err = s.await(root, seq, d); err == nil {
			copy(buf, view[T](s.slot(seq, root, len(buf)*sizeOf[T]()), len(buf)))
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
	copy(s.slot(seq, s.me, n*sizeOf[T]()), bytesOf(in))
	s.post(seq, d)
	var err error
	if recv != nil {
		err = s.combine(seq, d, func(j int, first bool) {
			x := view[T](s.slot(seq, j, n*sizeOf[T]()), n)
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
	s.seen(seq)
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
	copy(s.slot(seq, me, len(send)*sizeOf[T]()), bytesOf(send))
	s.post(seq, d)
	copy(recv[me*b:(me+1)*b], send[me*b:(me+1)*b])
	err := s.each(seq, d, func(j int) {
		copy(recv[j*b:(j+1)*b], view[T](s.slot(seq, j, len(send)*sizeOf[T]()), len(send))[me*b:(me+1)*b])
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
	s.seen(seq)
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
	copy(s.slot(seq, s.me, b*sizeOf[T]()), bytesOf(own))
	s.post(seq, d)
	var err error
	if recv != nil {
		copy(recv[s.me*b:(s.me+1)*b], own) // a no-op in place
		err = s.each(seq, d, func(j int) {
			copy(recv[j*b:(j+1)*b], view[T](s.slot(seq, j, b*sizeOf[T]()), b))
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
		copy(s.slot(seq, s.me, s.p*b*sizeOf[T]()), bytesOf(send))
		s.post(seq, d)
		copy(own, send[root*b:(root+1)*b])
	default:
		s.post(seq, d)
		if err = s.await(root, seq, d); err == nil {
			copy(own, view[T](s.slot(seq, root, s.p*b*sizeOf[T]()), s.p*b)[s.me*b:(s.me+1)*b])
		}
	}
	runtime.KeepAlive(s)
	return err
}

// Large calls on one host, when every rank can read the others' memory
// (shmColl.cma): a rank publishes the address of its buffer in its slot
// and the others copy what they need straight out of it with
// process_vm_readv, one copy per byte, by the reader. The owner of a
// buffer waits until every reader has said it is done before returning, so
// the buffer stays valid; Go never moves heap objects, and these buffers
// are on the heap (the dispatchers also hand them to package mpi, which
// keeps them, so they escape).

// setAddr and getAddr keep a buffer's address in a slot.
func (s *shmColl) setAddr(seq uint64, b []byte) {
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&s.slot(seq, s.me, 8)[0])), uint64(addrOf(b)))
}

func (s *shmColl) getAddr(seq uint64, j int) uintptr {
	return uintptr(atomic.LoadUint64((*uint64)(unsafe.Pointer(&s.slot(seq, j, 8)[0]))))
}

// shmBcastCMA: the root publishes buf's address and waits; every other
// rank reads all of it from the root and then posts, which tells the root
// it is done. Cost: c + nβ per rank, the p−1 copies running in parallel.
func shmBcastCMA[T mpi.Numeric](s *shmColl, buf []T, root int) error {
	seq := s.next()
	d := shmDesc(seq, shmBcast, typeCode[T](), root, len(buf))
	if err := s.reserve(seq); err != nil {
		return err
	}
	b := bytesOf(buf)
	var err error
	if s.me == root {
		s.setAddr(seq, b)
		s.post(seq, d)
		err = s.awaitAll(seq, d)
	} else {
		err = s.await(root, seq, d) // checks the count before reading
		if err == nil {
			err = readFrom(s.pid(root), s.getAddr(seq, root), b)
		}
		s.post(seq, d) // even after a failure: the root waits for it
	}
	runtime.KeepAlive(buf)
	runtime.KeepAlive(s)
	return err
}

// shmExchangeCMA is the pattern of the large Alltoall and Allgather: call
// seq1 publishes the address of each rank's source buffer src; each rank
// then calls read(j, addr) for every other rank j once j has posted; call
// seq2 says "done reading", and nobody returns (releasing src) before
// every rank has said it; a rank whose part failed posts a failure at
// seq2 instead, which the others report, and returns at once.
func shmExchangeCMA(s *shmColl, kind, typ, count int, src []byte, read func(j int, addr uintptr) error) error {
	seq1, seq2 := s.next(), s.next()
	d1, d2 := shmDesc(seq1, kind, typ, 0, count), shmDesc(seq2, kind, typ, 0, count)
	if err := s.reserve(seq1); err != nil {
		return err
	}
	s.setAddr(seq1, src)
	s.post(seq1, d1)
	var rerr error
	err := s.each(seq1, d1, func(j int) { // j's descriptor is checked before the read
		if rerr == nil {
			rerr = read(j, s.getAddr(seq1, j))
		}
	})
	if err == nil {
		err = rerr
	}
	if rerr := s.reserve(seq2); rerr != nil {
		return rerr
	}
	if err != nil {
		// The others may be in another call altogether (a mismatch):
		// waiting for their "done" could hang. They see the failure.
		s.post(seq2, shmDesc(seq2, shmFailed, typ, 0, count))
		return err
	}
	s.post(seq2, d2)
	err = s.awaitAll(seq2, d2)
	runtime.KeepAlive(src)
	runtime.KeepAlive(s)
	return err
}

// shmAlltoallCMA: rank r reads block r of every other rank's send buffer
// into block j of recv. Cost: 2c + (p−1)·b(β) per rank.
func shmAlltoallCMA[T mpi.Numeric](s *shmColl, send, recv []T, b int) error {
	me, sz := s.me, sizeOf[T]()
	copy(recv[me*b:(me+1)*b], send[me*b:(me+1)*b])
	rb := bytesOf(recv)
	return shmExchangeCMA(s, shmAlltoall, typeCode[T](), b, bytesOf(send), func(j int, addr uintptr) error {
		return readFrom(s.pid(j), addr+uintptr(me*b*sz), rb[j*b*sz:(j+1)*b*sz])
	})
}

// shmAllgatherCMA: every rank reads every other rank's block (own) into
// recv. Cost: 2c + (p−1)·b(β) per rank.
func shmAllgatherCMA[T mpi.Numeric](s *shmColl, own, recv []T, b int) error {
	me, sz := s.me, sizeOf[T]()
	copy(recv[me*b:(me+1)*b], own) // a no-op in place
	rb := bytesOf(recv)
	return shmExchangeCMA(s, shmAllgather, typeCode[T](), b, bytesOf(own), func(j int, addr uintptr) error {
		return readFrom(s.pid(j), addr, rb[j*b*sz:(j+1)*b*sz])
	})
}
