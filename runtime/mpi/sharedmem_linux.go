//go:build linux

package mpi

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gorun-hpc/gorun/runtime/transport/shm"
)

const sharedSupported = true

// AllocShared maps a region of size bytes, zeroed, that every rank of c
// shares (see SharedMem). It is collective over c: every rank calls it with
// the same size. It fails with ErrNotShared (on every rank alike) when
// c.SharesMemory() is false, and with a clear error when /dev/shm has too
// little space.
//
// Rank 0 of c creates a file in /dev/shm (named after the job, so that the
// launcher removes it should the job die before this returns), every rank
// maps it, and rank 0 removes the name once all have: after AllocShared
// returns nothing is left in /dev/shm, whatever happens to the job.
func (c *Comm) AllocShared(size int) (*SharedMem, error) {
	const op = "alloc shared"
	if err := c.usable(); err != nil {
		return nil, c.errorf(op, none, none, err)
	}
	if size < 0 || size > MaxShared {
		return nil, c.errorf(op, none, none, fmt.Errorf("%w: size %d is not in [0, %d]", ErrCount, size, MaxShared))
	}
	if !c.SharesMemory() {
		return nil, c.errorf(op, none, none, ErrNotShared)
	}
	total := roundUpInt(sharedHdr+size, os.Getpagesize())
	var (
		mem []byte
		err error
	)
	if c.size == 1 {
		mem, err = unix.Mmap(-1, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
		if err != nil {
			err = fmt.Errorf("mpi: map %d bytes: %w", total, err)
		}
	} else {
		mem, err = c.agreeShared(total)
	}
	if err != nil {
		return nil, c.errorf(op, none, none, err)
	}
	w := c.w
	st := &mapping{mem: mem}
	m := &SharedMem{c: c, data: mem[sharedHdr : sharedHdr+size : sharedHdr+size],
		inproc: w.inproc != "", yield: w.oversubscribed, st: st}
	runtime.AddCleanup(m, func(st *mapping) { _ = st.free() }, st)
	return m, nil
}

// agreeShared runs AllocShared's protocol on c's collective context:
//
//	rank 0: create, size and map the file → tell every rank its name (or why it failed)
//	others: map it → tell rank 0 whether that worked
//	rank 0: unlink → tell every rank the outcome
//
// so that either every rank returns the mapping or every rank an error.
func (c *Comm) agreeShared(total int) ([]byte, error) {
	w := c.w
	cc := c.Collective()
	prefix := w.job
	if w.inproc != "" {
		prefix = w.inproc
	}
	// Contexts are unique per process, not per job: disjoint communicators
	// (the halves of a Split) may share one. Their first members differ.
	path := filepath.Join(shm.DefaultDir, fmt.Sprintf("gorun-%s-m%d.%d-%d", prefix, c.ctx, c.toWorld(0), c.NextSeq()))
	if c.rank != 0 {
		var msg string
		if _, err := RecvValue(cc, &msg, 0, tagShared); err != nil {
			return nil, err
		}
		if msg != "" {
			return nil, errors.New(msg)
		}
		mem, err := mapShared(path, total, false)
		msg = ""
		if err != nil {
			msg = fmt.Sprintf("rank %d: %v", c.rank, err)
		}
		if err := SendValue(cc, msg, 0, tagShared); err != nil {
			unmapIf(mem)
			return nil, err
		}
		var final string
		if _, err := RecvValue(cc, &final, 0, tagShared); err != nil || final != "" {
			unmapIf(mem)
			if err == nil {
				err = errors.New(final)
			}
			return nil, err
		}
		return mem, nil
	}
	mem, err := mapShared(path, total, true)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	var errs []error
	for r := 1; r < c.size; r++ {
		errs = append(errs, SendValue(cc, msg, r, tagShared))
	}
	if err != nil {
		return nil, err
	}
	final := ""
	for range c.size - 1 {
		var ack string
		if _, err := RecvValue(cc, &ack, AnySource, tagShared); err != nil {
			errs = append(errs, err)
		} else if ack != "" && final == "" {
			final = ack
		}
	}
	if err := os.Remove(path); err != nil && final == "" {
		final = err.Error()
	}
	if err := errors.Join(errs...); err != nil && final == "" {
		final = err.Error()
	}
	for r := 1; r < c.size; r++ {
		_ = SendValue(cc, final, r, tagShared) // a rank we cannot tell has failed already
	}
	if final != "" {
		unmapIf(mem)
		return nil, errors.New(final)
	}
	return mem, nil
}

// mapShared creates (create) or opens path, of total bytes, and maps it
// shared. A creator that fails leaves no file.
func mapShared(path string, total int, create bool) ([]byte, error) {
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if create {
		flags |= unix.O_CREAT | unix.O_EXCL
	}
	fd, err := unix.Open(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mpi: shared memory: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	if create {
		if err := unix.Fallocate(fd, 0, 0, int64(total)); err != nil {
			_ = unix.Unlink(path)
			return nil, fmt.Errorf("mpi: shared memory: %s needs %d KiB free for a communicator's region (enlarge it, e.g. docker run --shm-size, or run with GORUN_TRANSPORT=tcp): %w",
				filepath.Dir(path), total>>10, err)
		}
	} else {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, fmt.Errorf("mpi: shared memory: stat %s: %w", path, err)
		}
		if st.Size != int64(total) {
			return nil, fmt.Errorf("mpi: shared memory: %s has %d bytes, want %d (ranks disagree on the size)", path, st.Size, total)
		}
	}
	mem, err := unix.Mmap(fd, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		if create {
			_ = unix.Unlink(path)
		}
		return nil, fmt.Errorf("mpi: shared memory: map %s: %w", path, err)
	}
	return mem, nil
}

func unmapIf(mem []byte) {
	if mem != nil {
		_ = unix.Munmap(mem)
	}
}

func unmapShared(mem []byte) error {
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("mpi: unmap shared memory: %w", err)
	}
	return nil
}

func roundUpInt(x, a int) int { return (x + a - 1) / a * a }

// futexWait sleeps while *addr == val, at most d (FUTEX_WAIT on a shared
// mapping, so any process's FUTEX_WAKE on the same page wakes it).
func futexWait(addr *uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	// EAGAIN (the value changed), EINTR and ETIMEDOUT all mean: look again.
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), 0 /* FUTEX_WAIT */, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWakeAll wakes every sleeper on addr, in any process.
func futexWakeAll(addr *uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), 1 /* FUTEX_WAKE */, uintptr(1<<31-1), 0, 0, 0)
}
