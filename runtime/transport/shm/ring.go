//go:build linux

package shm

// This file holds every use of package unsafe in the transport: views of
// words inside shared mappings, futex calls on them, and the address of a
// payload handed to a peer for cross-memory attach. Each use states the
// invariant it relies on.

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations (linux/futex.h). The words live in MAP_SHARED mappings
// used by several processes, so the FUTEX_PRIVATE_FLAG must not be set.
const (
	futexWakeOp = 1
)

// word32 returns the 32-bit word at off in mem.
//
// Invariant: mem is a live mapping that stays mapped until every user of the
// word has stopped (Close joins the reader and every Send before munmap; for
// this rank's own segment, which Poll reads without a lock, release keeps
// readable memory there until the Endpoint is unreachable), and off is
// 4-byte aligned and within mem (offsets come from the fixed layout in
// doc.go, or are 64-byte record offsets in a ring; mappings and ring data
// are page-aligned).
func word32(mem []byte, off int) *uint32 {
	_ = mem[off+3]
	return (*uint32)(unsafe.Pointer(&mem[off]))
}

// word64 returns the 64-bit word at off in mem. Same invariant as word32,
// with 8-byte alignment (required by sync/atomic's 64-bit operations).
func word64(mem []byte, off int) *uint64 {
	_ = mem[off+7]
	return (*uint64)(unsafe.Pointer(&mem[off]))
}

// futexWake wakes up to n waiters sleeping on addr, in any process.
//
// Invariant: addr points into a live shared mapping (see word32).
func futexWake(addr *uint32, n int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, uintptr(n), 0, 0, 0)
}

// sliceAddr returns the address of p's first byte, for a cross-memory
// attach descriptor that a peer (or this process) reads with
// process_vm_readv, or for a receive buffer that the sender of a split copy
// writes into with process_vm_writev.
//
// Invariant: the caller keeps p reachable and unmodified (by itself) until
// the other side has signalled completion, and p is on the heap, where the
// Go collector never moves objects (a stack could move while we wait), and
// non-empty. For a payload, outRing.keep holds it and makes it escape; for
// a receive buffer, splitRead holds it until the sender's chunks are all
// counted, and it comes from the Sink (Buffer's result is stored in heap
// objects, so it cannot point into a stack).
func sliceAddr(p []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p))))
}

// release gives up mem, the endpoint's own segment mapping, at Close while
// a Poll may still be reading it without a lock (Poll's fast path): it maps
// private zero pages over it in place (MAP_FIXED), which drops the shared
// pages at once, so a racing Poll reads zeros (nothing ready, nobody
// asleep) instead of faulting, and unmaps that placeholder once e is
// unreachable, when no Poll can run. If the replacement fails, the shared
// mapping itself is kept until then.
//
// Invariant: mem is a live mapping created by Create for e, page-aligned,
// and nothing but e's methods refers to it (the cleanup does not keep e
// alive: it holds mem, not e).
func release(e *Endpoint, mem []byte) {
	_, _ = unix.MmapPtr(-1, 0, unsafe.Pointer(unsafe.SliceData(mem)), uintptr(len(mem)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_NORESERVE)
	runtime.AddCleanup(e, func(m []byte) { _ = unix.Munmap(m) }, mem)
}
