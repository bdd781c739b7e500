//go:build linux

package mpi_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// TestAllocShared: every rank maps the same zeroed bytes, stores of one
// are seen by the others through WaitUntil and Wake (each rank publishes a
// flag in turn and waits for its predecessor's), both halves of a Split
// get regions of their own, and no file is left in /dev/shm.
func TestAllocShared(t *testing.T) {
	before, _ := filepath.Glob("/dev/shm/gorun-inproc*")
	mpitest.Run(t, 4, func(w *mpi.Comm) error {
		half, err := w.Split(w.Rank()%2, w.Rank())
		if err != nil {
			return err
		}
		defer half.Free()
		for _, c := range []*mpi.Comm{w, half} {
			if !c.SharesMemory() {
				return errors.New("goroutine ranks do not share memory")
			}
			m, err := c.AllocShared(4096)
			if err != nil {
				return err
			}
			b := m.Bytes()
			if len(b) != 4096 {
				return fmt.Errorf("len(Bytes()) = %d", len(b))
			}
			for i, x := range b[64*c.Size():] { // the others may have written below
				if x != 0 {
					return fmt.Errorf("byte %d = %d, want zeroed memory", 64*c.Size()+i, x)
				}
			}
			// Rank r writes its id in slot r, then raises flag r; it then
			// waits for flag r-1 and checks slot r-1.
			flag := func(r int) *uint32 { return (*uint32)(unsafe.Pointer(&b[64*r])) }
			r, p := c.Rank(), c.Size()
			b[64*r+8] = byte(100 + r + 10*(w.Rank()%2))
			atomic.StoreUint32(flag(r), 1)
			m.Wake()
			prev := (r + p - 1) % p
			if err := m.WaitUntil(func() bool { return atomic.LoadUint32(flag(prev)) == 1 }); err != nil {
				return err
			}
			want := byte(100 + prev + 10*(w.Rank()%2))
			if c == w {
				want = byte(100 + prev + 10*(prev%2))
			}
			if got := b[64*prev+8]; got != want {
				return fmt.Errorf("rank %d sees %d from rank %d, want %d", r, got, prev, want)
			}
			// Nobody frees before everyone has read: a second flag each.
			done := func(r int) *uint32 { return (*uint32)(unsafe.Pointer(&b[64*r+16])) }
			atomic.StoreUint32(done(r), 1)
			m.Wake()
			for j := range p {
				if err := m.WaitUntil(func() bool { return atomic.LoadUint32(done(j)) == 1 }); err != nil {
					return err
				}
			}
			if err := m.Free(); err != nil {
				return err
			}
		}
		return nil
	})
	after, _ := filepath.Glob("/dev/shm/gorun-inproc*")
	if len(after) > len(before) {
		t.Errorf("files left in /dev/shm: %v (before: %v)", after, before)
	}
}

// TestAllocSharedErrors: a size out of range is refused on every rank
// before any agreement, and waiting ranks learn of an abort.
func TestAllocSharedErrors(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if _, err := c.AllocShared(-1); !errors.Is(err, mpi.ErrCount) {
			return fmt.Errorf("AllocShared(-1) = %v, want ErrCount", err)
		}
		if _, err := c.AllocShared(mpi.MaxShared + 1); !errors.Is(err, mpi.ErrCount) {
			return fmt.Errorf("AllocShared(MaxShared+1) = %v, want ErrCount", err)
		}
		return nil
	})
	err := mpitest.Go(t.Context(), 2, func(c *mpi.Comm) error {
		m, err := c.AllocShared(64)
		if err != nil {
			return err
		}
		if c.Rank() == 1 {
			_ = c.Abort(3, "rank 1 stops") // ends the in-process job
			return nil
		}
		// Nobody ever sets the flag: only the abort can end this wait.
		err = m.WaitUntil(func() bool { return atomic.LoadUint32((*uint32)(unsafe.Pointer(&m.Bytes()[0]))) != 0 })
		if !errors.Is(err, mpi.ErrAborted) {
			return fmt.Errorf("WaitUntil = %v, want ErrAborted", err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, mpi.ErrAborted) {
		t.Error(err)
	}
}
