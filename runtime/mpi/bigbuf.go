package mpi

import (
	"math/bits"
	"sync"
)

// Payload buffers of large unexpected messages. A message whose receive
// is not posted yet is read into memory of the engine's and copied out when
// the receive comes. Above maxKeptPayload that memory used to be allocated
// per message: zeroed by the allocator, faulted in by the kernel page by
// page while the transport wrote it, and collected soon after, which made a
// large message that arrived a little early several times slower than one
// that found its receive. Such buffers now come from pools by power-of-two
// size class, and go back once their message has been copied out.

// bigBuf is one pooled payload buffer.
type bigBuf struct{ b []byte }

// bigPools[k] holds buffers of 1 << (bits.Len(maxKeptPayload)+k) bytes
// (128 KiB, 256 KiB, …); larger than the largest class is allocated
// directly.
var bigPools [20]sync.Pool

// bigClass returns the pool index for a payload of n > maxKeptPayload bytes.
func bigClass(n int) int {
	return bits.Len(uint(n-1)) - bits.Len(uint(maxKeptPayload))
}

// getBig returns a pooled buffer of at least n bytes (n > maxKeptPayload);
// a nil handle means the buffer is not pooled.
func getBig(n int) ([]byte, *bigBuf) {
	k := bigClass(n)
	if k < 0 || k >= len(bigPools) {
		return make([]byte, n), nil
	}
	bb, _ := bigPools[k].Get().(*bigBuf)
	if bb == nil {
		bb = &bigBuf{b: make([]byte, 1<<(bits.Len(uint(maxKeptPayload))+k))}
	}
	return bb.b[:n], bb
}

// putBig returns a buffer from getBig to its pool; nil is ignored.
func putBig(bb *bigBuf) {
	if bb == nil {
		return
	}
	bigPools[bigClass(len(bb.b))].Put(bb)
}
