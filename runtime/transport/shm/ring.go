//go:build linux

package shm

// This file holds every use of package unsafe in the transport: views of
// words inside shared mappings, futex calls on them, and the address of a
// payload handed to a peer for cross-memory attach. Each use states the
// invariant it relies on.

import (
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
// word has stopped (Close joins the reader and every Send before munmap), and
// off is 4-byte aligned and within mem (offsets come from the fixed layout in
// layout.go; the mapping is page-aligned).
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
// process_vm_readv.
//
// Invariant: the caller keeps p reachable and unmodified until the reader
// has signalled completion (outRing.keep holds it, which also makes payloads
// escape to the heap, where the Go collector never moves objects; a stack
// could move while Send waits), and p is non-empty.
func sliceAddr(p []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p))))
}
