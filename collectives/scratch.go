package collectives

import (
	"math/bits"
	"sync"
	"unsafe"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// Scratch buffers. Algorithms need temporary vectors as long as the user's
// (a receive buffer for the partner's half, a partial result). Allocating
// them on every call costs more than the call itself for large vectors: 8
// MB of fresh memory per 1M-double allreduce is zeroed by the allocator,
// faulted in page by page, and soon collected. They come from pools by
// power-of-two size class instead.
//
// A scratch buffer holds stale data: callers overwrite every element they
// read (a receive of exactly that length, or a copy).

// scratch is one pooled buffer; words backs it (8-byte aligned, which every
// Numeric type needs at most).
type scratch struct{ words []uint64 }

// Buffers of up to smallScratch bytes are kept on short free lists (a
// sync.Pool would do, but under the race detector it drops a random share
// of what is put back, and small collectives must not allocate); larger
// ones in sync.Pools, which the garbage collector may empty.
const (
	smallScratch   = 64 << 10
	smallClasses   = 14 // sizeClass(smallScratch) + 1
	keepPerClass   = 8
	scratchClasses = 40
)

var (
	smallMu    sync.Mutex
	smallFree  [smallClasses][]*scratch
	largePools [scratchClasses]sync.Pool
)

// sizeClass returns the class of n bytes: buffers of 8<<class bytes.
func sizeClass(n int) int {
	if n <= 8 {
		return 0
	}
	return bits.Len(uint(n-1)) - 3
}

// getScratch returns a buffer of n elements of T and its handle, which the
// caller passes to putScratch once it no longer uses the buffer.
func getScratch[T mpi.Numeric](n int) ([]T, *scratch) {
	if n == 0 {
		return nil, nil
	}
	var z T
	k := sizeClass(n * int(unsafe.Sizeof(z)))
	if k >= scratchClasses {
		return make([]T, n), nil
	}
	var s *scratch
	if k < smallClasses {
		smallMu.Lock()
		if l := smallFree[k]; len(l) > 0 {
			s = l[len(l)-1]
			l[len(l)-1] = nil
			smallFree[k] = l[:len(l)-1]
		}
		smallMu.Unlock()
	} else {
		s, _ = largePools[k].Get().(*scratch)
	}
	if s == nil {
		s = &scratch{words: make([]uint64, (8<<k)/8)}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(s.words))), n), s
}

// putScratch returns a buffer from getScratch; nil is ignored.
func putScratch(s *scratch) {
	if s == nil {
		return
	}
	k := sizeClass(len(s.words) * 8)
	if k >= smallClasses {
		largePools[k].Put(s)
		return
	}
	smallMu.Lock()
	if len(smallFree[k]) < keepPerClass {
		smallFree[k] = append(smallFree[k], s)
	}
	smallMu.Unlock()
}
