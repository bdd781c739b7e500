//go:build amd64 || arm64

package sched

// Watch looks at *word up to n times and returns the first value it reads
// that is not zero, or zero if all n looks read zero (n <= 0: none). Each
// look is an atomic load with acquire ordering, like atomic.LoadUint64, and
// between looks it gives the processor its spin-wait hint (PAUSE on amd64,
// YIELD on arm64). The hint keeps a tight loop of loads from piling up
// speculative reads of a line that another core is about to write: without
// it, the write that ends the wait also discards the loop's speculated work
// (on x86 a memory-ordering machine clear), which a small message pays on
// arrival. word must stay valid for the call; Watch neither blocks nor
// yields the thread.
//
//go:noescape
func Watch(word *uint64, n int) uint64
