package mpi

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gorun-hpc/gorun/runtime/internal/sched"
)

// ErrNotShared is returned by AllocShared on a communicator whose ranks do
// not all reach each other through shared memory (they span hosts, or the
// job runs with GORUN_TRANSPORT=tcp).
var ErrNotShared = errors.New("mpi: the communicator's ranks do not all share memory")

// MaxShared is the largest region AllocShared maps.
const MaxShared = 1 << 30

// sleepCheck bounds a futex sleep in WaitUntil: how often a sleeping
// waiter looks for lost ranks and an aborted job.
const sleepCheck = 100 * time.Millisecond

// tagShared is the tag of AllocShared's agreement on the collective context.
const tagShared = reservedTags + 2

// sharedHdr is the bytes at the start of a region that SharedMem keeps for
// its waiting protocol: sleepers (u32) at 0 and bell (u32) at 4, on one
// cache line that only sleepers write, so that Wake reads it cheaply; the
// user's bytes start on the third cache line.
const sharedHdr = 128

// A SharedMem is one region of memory mapped by every rank of a
// communicator whose ranks all share a host (MPI_Win_allocate_shared, with
// one region for the whole group rather than one piece per rank): a store by
// one rank is seen by the others. It is what package collectives reduces
// and broadcasts in on one host.
//
// Bytes gives every rank the same bytes, zeroed at allocation. Ordinary
// loads and stores to them are not ordered between processes: publish with
// sync/atomic (a store of a flag after the data, a load of the flag before
// reading it), as on amd64 and arm64 Go's atomics are sequentially
// consistent and fence the ordinary accesses around them. WaitUntil and
// Wake add the runtime's waiting policy to such flags: bounded spinning,
// then sleeping without using CPU, and an error instead of a hang when a
// member rank dies or the job aborts.
//
// The region stays mapped until Free, or until the SharedMem is garbage:
// keep the *SharedMem reachable while any slice from Bytes is in use.
// Methods are safe for concurrent use.
type SharedMem struct {
	c      *Comm
	data   []byte
	inproc bool // ranks are goroutines of one process: wait through the Go scheduler
	yield  bool // the host is oversubscribed: yield the CPU at once when waiting
	st     *mapping
}

// mapping is what unmapping needs, apart from the SharedMem so that a
// cleanup attached to the SharedMem can unmap it exactly once.
type mapping struct {
	mem   []byte
	freed atomic.Bool
}

func (mp *mapping) free() error {
	if mp.freed.Swap(true) {
		return nil
	}
	return unmapShared(mp.mem)
}

// SharesMemory reports whether every rank of c reaches this one through
// shared memory (or is this one), so that AllocShared can work. The answer
// is the same on every rank of c.
func (c *Comm) SharesMemory() bool {
	w := c.w
	for i := range c.size {
		switch w.via[c.toWorld(i)] {
		case "self", "shm", "inproc":
		default:
			return false
		}
	}
	return sharedSupported
}

// Bytes returns the region's bytes (the size passed to AllocShared), the
// same memory on every rank of the communicator. The slice is valid until
// Free.
func (m *SharedMem) Bytes() []byte { return m.data }

func (m *SharedMem) sleepers() *uint32 { return (*uint32)(unsafe.Pointer(&m.st.mem[0])) }
func (m *SharedMem) bell() *uint32     { return (*uint32)(unsafe.Pointer(&m.st.mem[4])) }

// Wake wakes the ranks sleeping in WaitUntil on this region so that they
// check their condition again. Call it after publishing what they may be
// waiting for (an atomic store). It costs one load when nobody sleeps.
func (m *SharedMem) Wake() {
	if atomic.LoadUint32(m.sleepers()) == 0 {
		return
	}
	atomic.AddUint32(m.bell(), 1)
	if !m.inproc {
		futexWakeAll(m.bell())
	}
}

// WaitUntil returns once ready returns true, or with an error wrapping
// ErrPeerLost or ErrAborted once a member of the communicator has died or
// the job is ending. ready must be cheap, must not block, and becomes true
// only through other ranks' stores followed by their Wake.
//
// Policy, the same as a blocking receive's: spin for a few microseconds
// (from the first round, yield the CPU between rounds when the host runs
// more ranks than CPUs), then keep yielding up to about a millisecond in
// all, then sleep on a futex in the region until a Wake, checking for lost
// ranks every sleepCheck. A rank that waits long uses almost no CPU: ranks
// blocked 2 s in a Barrier used 0.005 s (0.02 s with 10 ms checks). Lost ranks are noticed by the engine anyway (launcher
// events, the shared-memory reader's checks every 250 ms), so a longer
// sleep delays nothing that matters.
func (m *SharedMem) WaitUntil(ready func() bool) error {
	if ready() {
		return nil
	}
	sp := sched.Spinner{Yield: m.yield}
	yield := sched.Yield
	if m.inproc {
		yield = runtime.Gosched
	}
	for !ready() {
		ok, tick := sp.More(yield)
		if tick {
			if err := m.trouble(); err != nil {
				return err
			}
		}
		if !ok {
			return m.sleep(ready)
		}
	}
	return nil
}

// sleep is WaitUntil's last stage: sleep on the bell until a Wake (or
// briefly, in process), then look again.
func (m *SharedMem) sleep(ready func() bool) error {
	nap := 10 * time.Microsecond
	for {
		b := atomic.LoadUint32(m.bell())
		atomic.AddUint32(m.sleepers(), 1)
		ok := ready()
		if !ok {
			if m.inproc {
				time.Sleep(nap)
				nap = min(2*nap, time.Millisecond)
			} else {
				futexWait(m.bell(), b, sleepCheck)
			}
		}
		atomic.AddUint32(m.sleepers(), ^uint32(0))
		if ok || ready() {
			return nil
		}
		if err := m.trouble(); err != nil {
			return err
		}
	}
}

// trouble returns why waiting on the region's ranks is pointless: the job
// aborted, a member rank is lost, or the region was freed.
func (m *SharedMem) trouble() error {
	if m.st.freed.Load() {
		return fmt.Errorf("mpi: shared memory used after Free")
	}
	e := m.c.w.eng
	if !e.trouble.Load() {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range m.c.size {
		if err := e.failedLocked(m.c.toWorld(i)); err != nil {
			return err
		}
	}
	return nil
}

// Free unmaps the region on this rank. Nothing may use its Bytes
// afterwards. Free is not collective; the memory goes once every rank has
// freed it (or exited). Calling it again does nothing.
func (m *SharedMem) Free() error { return m.st.free() }
