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

// scratchPools[k] holds buffers of 8<<k bytes.
var scratchPools [40]sync.Pool

// sizeClass returns the pool index for n bytes.
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
	bytes := n * int(unsafe.Sizeof(z))
	k := sizeClass(bytes)
	if k >= len(scratchPools) {
		return make([]T, n), nil
	}
	s, _ := scratchPools[k].Get().(*scratch)
	if s == nil {
		s = &scratch{words: make([]uint64, (8<<k)/8)}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(s.words))), n), s
}

// putScratch returns a buffer from getScratch to its pool; nil is ignored.
func putScratch(s *scratch) {
	if s == nil {
		return
	}
	scratchPools[sizeClass(len(s.words)*8)].Put(s)
}
