//go:build !linux

package sched

import "runtime"

// Yield gives the processor to other goroutines (runtime.Gosched). On
// Linux it gives the core to other processes (sched_yield).
func Yield() { runtime.Gosched() }
