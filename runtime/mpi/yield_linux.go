package mpi

import "golang.org/x/sys/unix"

// osYield gives the core to another runnable process, if any (sched_yield).
// Unlike runtime.Gosched it also lets other ranks' processes run.
func osYield() {
	// sched_yield cannot fail on Linux; it is a short raw syscall.
	_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
}
