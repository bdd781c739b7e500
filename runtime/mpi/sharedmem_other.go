//go:build !linux

package mpi

import "time"

const sharedSupported = false

// AllocShared fails with ErrNotShared: shared regions need Linux.
func (c *Comm) AllocShared(size int) (*SharedMem, error) {
	return nil, c.errorf("alloc shared", none, none, ErrNotShared)
}

func futexWait(addr *uint32, val uint32, d time.Duration) {}
func futexWakeAll(addr *uint32)                           {}
func unmapShared(mem []byte) error                        { return nil }
