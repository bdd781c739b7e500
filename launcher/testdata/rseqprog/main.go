//go:build linux && cgo

// Command rseqprog is a test helper of package launcher: a program linked
// with the C library, as a Go program that uses cgo is, that prints
// whether glibc registered restartable sequences (rseq) for its thread:
// "rseq registered", "rseq free", or "rseq unknown: ERROR" when the kernel
// gives another answer (no rseq at all, for instance).
package main

// The import alone (no preamble) links the C library, and the runtime
// then creates its threads through it.

import "C"

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	rseqLen        = 32         // sizeof(struct rseq), which must be 32-byte aligned
	rseqSig        = 0x53053053 // any signature will do: nothing aborts here
	rseqUnregister = 1          // RSEQ_FLAG_UNREGISTER
)

func main() {
	runtime.LockOSThread()
	// Register another area for this thread: while glibc's registration
	// stands the kernel refuses it with EINVAL; with none it succeeds, and
	// is undone at once.
	buf := make([]byte, 2*rseqLen)
	p := unsafe.Pointer(&buf[0])
	p = unsafe.Add(p, (rseqLen-uintptr(p)%rseqLen)%rseqLen)
	_, _, errno := unix.Syscall6(unix.SYS_RSEQ, uintptr(p), rseqLen, 0, rseqSig, 0, 0)
	switch errno {
	case 0:
		_, _, errno = unix.Syscall6(unix.SYS_RSEQ, uintptr(p), rseqLen, rseqUnregister, rseqSig, 0, 0)
		if errno != 0 {
			fmt.Println("rseq unknown: unregister:", errno)
			return
		}
		fmt.Println("rseq free")
	case unix.EINVAL:
		fmt.Println("rseq registered")
	default:
		fmt.Println("rseq unknown:", errno)
	}
	runtime.KeepAlive(buf)
}
