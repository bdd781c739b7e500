//go:build !amd64 && !arm64

package sched

import "sync/atomic"

// Watch looks at *word up to n times and returns the first value it reads
// that is not zero, or zero if all n looks read zero (n <= 0: none). Each
// look is atomic.LoadUint64. (On amd64 and arm64 it also gives the
// processor a spin-wait hint between looks.)
func Watch(word *uint64, n int) uint64 {
	for ; n > 0; n-- {
		if w := atomic.LoadUint64(word); w != 0 {
			return w
		}
	}
	return 0
}
