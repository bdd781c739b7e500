//go:build linux && (amd64 || arm64)

package sched

// Yield gives the core to another runnable process, if any (sched_yield).
// It is a raw system call that cannot fail or block: the calling goroutine
// keeps its thread and its P. Unlike runtime.Gosched it lets other
// processes run, which is what a waiter needs when the job has more ranks
// than the host has cores.
func Yield()
