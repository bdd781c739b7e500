// Package shm is the shared-memory transport between ranks on one host.
//
// # Segments
//
// Each rank owns one segment file, Dir/gorun-<job>-<rank> (Dir is /dev/shm
// by default), mapped MAP_SHARED by itself and by every other local rank. It
// holds the rank's inbound traffic: one single-producer single-consumer ring
// per local rank (itself included, for frames to oneself), written by that
// rank and read by the owner, plus a control block (pid, state, and a
// "sleeping" word), and a doorbell FIFO, Dir/gorun-<job>-<rank>.bell. The file is sized with fallocate, so
// a /dev/shm that is too small fails Create with an error naming the sizes
// (never a SIGBUS later). Lifecycle: Create (map own segment), a fence,
// Attach (map the peers'), a fence, Unlink (from then on a kill -9 leaves
// nothing behind), ..., Close.
//
// Size: with n local ranks every ring holds
//
//	R(n) = clamp(largest power of two <= 192 MiB / n², 16 KiB, 1 MiB)
//
// bytes and a segment takes
//
//	SegmentSize(n) = 4 KiB + roundup(256·n, 4 KiB) + n·R(n)
//
// so all n segments together take n·SegmentSize(n) <= 192 MiB + 1.3 MiB for
// n <= 64 (64 ranks: 32 KiB rings, 2.02 MiB per segment, 129 MiB in all;
// 2 ranks: 1 MiB rings, 2 MiB per segment).
//
// # Rings and memory ordering
//
// A ring is R bytes of data plus a control entry: head (bytes ever
// consumed, written by the consumer) on its own cache line, and words for
// waiting and for large messages. Records start at 64-byte boundaries: an
// 8-byte record header word {size u32, type u8, zero u24}, then (for frame
// records) the 32-byte transport header, then the payload, which may wrap
// around the end of the ring. The first 64 bytes of a record never wrap, so
// a frame of up to 24 payload bytes is one cache line.
//
// The header word is the publication: a record is committed when its
// header word is non-zero. The producer (one Send at a time per
// destination, under a mutex) writes the record's body with ordinary
// stores, zeroes the header word of the record after it, and then stores
// this record's header word atomically; the consumer, at its head, loads
// the header word atomically and reads the record only if it is non-zero.
// Since the producer zeroed the next header word before it committed this
// record, the consumer stops there until the next commit: the header word
// at the consumer's head is always zero or a committed record, never stale
// bytes of an earlier lap (which is why reserve keeps room for that word).
// A waiting receiver thus watches a single cache line, the one the next
// record lands in (there is no tail word any more). The consumer publishes
// the space it freed with an atomic store of head after it has read the
// records, once per drain (and every R/16 bytes within a long one). Go's
// sync/atomic operations are sequentially consistent and act as compiler
// barriers, and on amd64 (TSO) an atomic store is a locked instruction, so
// every byte written before the store of a header word is visible to a
// process that has loaded it (a release/acquire pair), in this process and
// in others alike. The same argument covers head in the other direction.
//
// # Wake-ups
//
// The receiving endpoint has one background reader goroutine. It drains the
// rings and, when they are empty, goes to sleep with a check-then-sleep
// protocol: store sleeping=1, look at every ring once more, then block
// reading its doorbell FIFO. A producer publishes its record and then loads
// sleeping; only if it is 1 and it wins the CAS 1→0 does it write one byte to
// the FIFO. Both sides store before they load (sequentially consistent
// atomics), so either the reader sees the record or the producer sees
// sleeping=1 and its byte ends (or pre-empts) the reader's blocking read: no
// wake-up is lost, and a producer makes no system call while the reader is
// awake. The FIFO, rather than a futex, is deliberate: the read parks the
// goroutine in Go's netpoller, while a goroutine blocked in FUTEX_WAIT keeps
// its P (a GOMAXPROCS slot) until sysmon retakes it, up to ~10 ms later —
// which stalled the goroutines queued behind it, typically the one the last
// delivery had just woken. For the same reason, a Send that waits (for ring
// space or for a large message to be read) first polls for 1 ms, with a
// sched_yield now and then once the first 20 µs (sched.SpinTime) have
// passed, and then polls with backoff sleeps of 5 µs
// doubling to 250 µs on Go timers (which often last a millisecond: the
// runtime waits for timers in epoll). When the host runs more local ranks
// than CPUs the spin yields the CPU on every round, for up to 2 ms: the
// rank that has to read the message may be waiting for this very core. The
// spin never calls runtime.Gosched, which would wake an idle P's thread to
// look for work on the core the peer needs.
//
// Poll lets the engine deliver in its own goroutine. Its fast path takes no
// lock and makes no atomic read-modify-write: it loads the published head
// and the header word there for each ring (a few ns with two ranks), looks
// a few more times if that finds nothing, and takes the drain lock only
// when a record is there or the reader sleeps. It then delivers one frame
// (rings taken in turn) and returns: the waiter whose message that was is
// done without first reading the next record's header word, a cache line
// the sender has just written. A frame whose payload lies in one piece in
// the ring goes to the Sink in one DeliverFrame call when the Sink is a
// transport.FrameSink (the engine is), which copies it straight from the
// ring into the receive buffer; when it is a transport.FrameBatchSink (the
// engine is) and a drain may deliver more than one frame (PollAll, the
// reader), such frames and the ones right behind them go in runs of up to
// 64 in one DeliverFrames call, matched under one lock. That is safe after Close
// because Close replaces its own mapping by private zero pages (unmapped
// once the Endpoint is unreachable) instead of unmapping it. Each call
// marks the endpoint awake (a process-local word, stored only when it was
// clear); if the reader was asleep, the first Poll wakes it (once). A reader that finds the endpoint marked awake clears
// the mark and naps (100 µs) without announcing sleep, so producers skip
// FUTEX_WAKE while anybody keeps polling; a reader that finds no Poll since
// its last nap goes to sleep for real. So a frame that arrives after the
// last Poll is delivered at most about one nap (100 µs) later, and an idle
// endpoint burns no CPU (it wakes every 250 ms to look for dead peers).
//
// # Taking a frame directly
//
// Take serves a blocking receive that waits for one peer's next frame: it
// takes the drain lock, then watches that ring's next header word while
// delivering other peers' frames to the Sink, and copies a frame that is
// what the receiver asked for (a data frame of its context, tag and type,
// no flags, not too long) straight into the receiver's buffer, skipping the
// Sink: from the ring when it is inline, or with process_vm_readv from the
// sender's memory when it is posted for cross-memory attach and smaller
// than the split copy's threshold (128 KiB). It asks the Sink
// (transport.QuietSink) when the frame lands, and every SpinEvery looks
// while it waits, whether it holds anything the frame would have to be
// matched against first, and refuses every frame while it does; a refused
// frame stays in the ring for the Sink, in order. Holding the lock while
// waiting costs nothing on the critical path when the frame lands (no lock
// to take then), and the space it consumes is published lazily: by the
// next Take that finds the ring empty for SpinEvery looks, by any drain
// (drainLocked publishes what Takes left first), or once a sixteenth of
// the ring is unpublished. A producer never waits on that lag for good: it
// amounts to at most a sixteenth of the ring, and space beyond it needs a
// drain anyway.
//
// A look between the chores is one load, and, on an oversubscribed host,
// one sched_yield before it, called straight from a small assembly stub
// (package runtime/internal/sched); otherwise the looks run in an assembly
// loop (sched.Watch) with the processor's spin-wait hint (PAUSE) between
// them, which took about 5–15% off an 8-byte half round trip: bare loads
// pile up speculative reads of the line, which the sender's write then
// discards. On an oversubscribed host a waiter gets one look per turn
// on the core, and every turn begins with cold caches and a return-stack
// buffer the kernel has refilled: each further call level or cache line a
// look touches is paid at every hop of a token ring. Doing the chores
// (other peers' rings, the lag, the Sink's quiet, the policy's clock)
// only every SpinEvery looks, and yielding before them on the first empty
// look, took the 8-rank token ring on 2 cores from 1.22× to 1.05× Open
// MPI's hop (paired medians of 12 alternating rounds; 1.01× over 58 rounds
// of examples/bench/compare.sh). A turn costs about 1.6 µs of CPU on a
// small VM either way; how many turns a hop takes depends on the order in
// which the scheduler rotates a core's ranks, which this cannot choose.
// Ranks that gorun starts run without glibc's restartable sequences (see
// package launcher), which spares the kernel some work at every switch:
// 0.94× OpenMPI's hop over 30 alternating rounds, from 1.06×.
//
// # Large messages
//
// Payloads up to the eager limit (min(64 KiB, R/4)) are copied through the
// ring: in by the sender, out by the receiver. A process_vm_readv has a
// fixed cost of about 1.5 µs on a small VM (8 KiB took 1.8 µs, 32 KiB
// 3.7), while two copies of 32 KiB through a ring that both cores keep in
// their shared cache take well under that: a 32 KiB ping-pong took 2.0 µs
// a hop instead of 5.5 (OpenMPI, which reads it with process_vm_readv:
// 5.0), and windowed bandwidth at 32 KiB rose from 5.4 to 22 GB/s
// (OpenMPI 6.9), medians of 10 and 8 alternating rounds. When the VM's
// two vCPUs sit on cores that share no cache, the two copies cross between
// them twice and a hop took 8–11 µs instead of 5.5–6.4, in 3 of those 10
// rounds. Larger payloads use cross-memory attach: the sender posts a descriptor
// {header, sequence number, its pid, address}, the receiver asks the Sink
// for the destination (Sink.Buffer) and reads the payload straight into it
// with process_vm_readv, a single copy. A per-ring word carries the
// descriptor's state (posted → reading → done, or posted → revoked by a
// sender that gives up first, or reading → refused); the sender waits for
// done, keeping its payload alive, then returns. If the kernel refuses
// process_vm_readv (EPERM, ENOSYS, e.g. under a strict Yama ptrace_scope or
// seccomp), the receiver answers refused and both sides switch, for the rest
// of the job, to a pipelined copy of the payload through the ring in chunks
// of min(R/4, 256 KiB). Create calls prctl(PR_SET_PTRACER, ANY) so that
// local ranks may read each other under Yama ptrace_scope=1.
//
// One core copies about 9–10 GB/s with process_vm_readv, so from 128 KiB
// on the receiver shares the copy with the sender, which is waiting anyway
// ("split copy", state reading → split → done): it publishes its buffer's
// address and a chunk size (len/8, clamped to 64–512 KiB) in the ring's
// control entry and stores split; then both sides claim chunks from a
// shared counter (atomic add), the receiver reading each with
// process_vm_readv, the sender writing each into the receiver's buffer with
// process_vm_writev and counting it in a "sender done" word. After the
// last claim the receiver waits for the sender's chunks in flight (at most
// one; it yields, and gives up if the sender's process has exited), then
// stores done. A sender whose write fails hands that chunk back (a "failed
// chunk" word; on EPERM/ENOSYS/EACCES it never helps again in this job) and
// the receiver reads it itself; a sender that never sees split just leaves
// every chunk to the receiver. If the receiver's own read fails after split
// it answers refused as before: the sender, whose writes into the buffer
// have all finished by the time it sees refused, then sends the whole
// payload through the ring, overwriting them. Two cores copy a 4 MiB
// message at 15–19 GB/s here.
//
// # Failures
//
// A peer that closes sends KindBye on its ring and marks its segment
// closed; later Sends to it fail with an error wrapping transport.ErrPeerLost
// (no PeerLost call). A peer process that dies is noticed through a pidfd
// (readable once the process has exited, zombies included): by the reader
// every 250 ms while idle and by any Send that waits for it; the Sink gets
// PeerLost after every frame the peer had published, and Sends fail with
// ErrPeerLost. Nothing waits on a dead peer.
package shm

import (
	"math/bits"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// Config configures an Endpoint.
type Config struct {
	// Job is the job id; it names the segment files and must be the same
	// for every local rank of the job.
	Job string
	// Rank is this rank's world rank.
	Rank int
	// Local lists the world ranks on this host, including Rank, ascending.
	Local []int
	// Sink receives inbound frames.
	Sink transport.Sink
	// Dir holds the segment files; "/dev/shm" when empty.
	Dir string
}

// SpinEvery is how often, in looks at the watched ring, Take does its
// chores and asks spin how to go on (SpinEvery looks per call). A look
// between is a load and, when spin said so, a sched_yield: with more
// ranks than cores the waiter runs one look per turn it is given, so what
// a look costs after a context switch (cold caches, a return stack the
// kernel has refilled) is most of what a hop of a token ring costs beyond
// the switch itself.
const SpinEvery = 8

// DefaultDir is the directory of segment files when Config.Dir is empty.
const DefaultDir = "/dev/shm"

// Layout of a segment. Offsets are in bytes from the start of the mapping.
const (
	pageSize = 4096

	// Control block, first page.
	offMagic    = 0   // u64, stored last at Create: the segment is initialised
	offVersion  = 8   // u32
	offN        = 12  // u32 local ranks
	offIndex    = 16  // u32 owner's index in Local
	offPid      = 20  // u32 owner's pid
	offRank     = 24  // u32 owner's world rank
	offRingSize = 32  // u64 R
	offState    = 64  // u32 stateOpen, then stateClosed once nothing reads the rings
	_           = 128 // u32 reserved (was a futex doorbell; the FIFO replaced it)
	offSleeping = 192 // u32 1 while the reader is (about to be) asleep

	// Ring control entries, one per producer, from the second page.
	ringCtlStride = 256
	_             = 0   // u64 reserved (was tail; the record header word publishes now)
	rcHead        = 64  // u64 bytes consumed by the consumer
	rcPWait       = 128 // u32 1 while the producer sleeps on rcPEvent (reserved: producers poll)
	rcPEvent      = 132 // u32 futex word for a sleeping producer, bumped by the consumer
	rcCMA         = 192 // u32 cross-memory-attach descriptor state: seq<<cmaShift | cmaState
	rcNext        = 196 // u32 split copy: next chunk to claim, by either side
	rcSDone       = 200 // u32 split copy: chunks the sender has finished (written or failed)
	rcSFail       = 204 // u32 split copy: 1 + the chunk the sender failed to write, or 0
	rcChunk       = 208 // u32 split copy: bytes per chunk
	rcDst         = 216 // u64 split copy: address of the receiver's buffer

	segMagic   = 0x676f72756e73686d // "gorunshm"
	segVersion = 2

	stateOpen   = 1
	stateClosed = 2

	recAlign   = 64                                     // records start at multiples of this
	recHdrSize = 8                                      // {size u32, type u8, pad}
	cmaRecSize = recHdrSize + transport.HeaderSize + 16 // a recCMA record: header word, transport header, descriptor

	minRing    = 16 << 10
	maxRing    = 1 << 20
	ringBudget = 192 << 20 // bytes of rings for all ranks together
)

// Record types.
const (
	recFrame = 1 // header + inline payload: a complete frame
	recCMA   = 2 // header + {addr u64, seq u32, pid u32}: read it with process_vm_readv
	recBegin = 3 // header: a frame whose payload follows in recChunk records
	recChunk = 4 // the next bytes of the current recBegin (or refused recCMA) frame
)

// States of the cross-memory-attach word: seq<<cmaShift | state.
const (
	cmaShift   = 3
	cmaPosted  = 0 // sender published the descriptor
	cmaReading = 1 // receiver claimed it and is reading
	cmaDone    = 2 // receiver has read everything: the sender may return
	cmaRevoked = 3 // sender withdrew it before the receiver claimed it
	cmaRefused = 4 // the kernel refused process_vm_readv: the payload follows in chunks
	cmaSplit   = 5 // receiver is reading and invites the sender to write chunks too
)

// ringSize returns R(n), the bytes of one ring when n ranks share the host.
func ringSize(n int) int64 {
	if n < 1 {
		n = 1
	}
	q := uint64(ringBudget) / (uint64(n) * uint64(n))
	if q < minRing {
		return minRing
	}
	r := int64(1) << (bits.Len64(q) - 1)
	return min(r, maxRing)
}

// dataOffset returns where the ring data starts in a segment for n ranks.
func dataOffset(n int) int64 {
	return pageSize + roundUp(int64(n)*ringCtlStride, pageSize)
}

func roundUp(x, a int64) int64 { return (x + a - 1) / a * a }

// SegmentSize returns the bytes of one rank's segment file when localRanks
// ranks share the host (see the package documentation for the formula); 0
// for fewer than one rank. All local ranks together need localRanks times
// as much.
func SegmentSize(localRanks int) int64 {
	if localRanks < 1 {
		return 0
	}
	return dataOffset(localRanks) + int64(localRanks)*ringSize(localRanks)
}
