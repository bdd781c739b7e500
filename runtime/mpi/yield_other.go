//go:build !linux

package mpi

import "runtime"

// osYield lets other goroutines run; other systems have no portable
// process-level yield.
func osYield() { runtime.Gosched() }
