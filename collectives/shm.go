package collectives

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// Small collectives on one host go through a region of shared memory that
// every rank of the communicator maps (mpi.AllocShared), as Open MPI's
// coll/sm and xhc do, instead of through point-to-point messages: a barrier
// among two ranks is one store and one load of a cache line each way, an
// allreduce of one double the same plus the reduction, and 8 ranks sharing
// 2 cores do one round of waiting instead of lg p or p-1.
//
// Layout, for p ranks: one control block of shmCtl bytes per rank (its
// pid and what the cross-memory probe found), then shmSets sets of p slots.
// A slot starts with a 64-byte header line and has slotBytes(p) bytes of
// data after it:
//
//	header of slot (set, j): seq (u64) | desc (u64) | 48 bytes of inline data
//	data of slot (set, j):   payloads over 48 bytes
//
// Each blocking collective call on the communicator takes the next number
// seq (the same on every rank: calling order is the same everywhere) and
// set seq mod shmSets. A rank writes its payload (inline in the header when
// it fits, so that a reader pulls a single cache line for a small call),
// then desc (the call's kind, element type, count and root: see shmDesc),
// then seq, with an atomic store that publishes everything before it; then
// it Wakes sleepers. Readers wait until the header's seq reaches the call's
// and then read. Posting call seq also says that the rank has finished
// reading everything of the calls before seq, so before writing into set
// seq mod shmSets again, for call seq, a rank waits until every rank has
// posted call seq−shmSets+1 (reserve): nobody still reads the set. A root
// may thus run up to shmSets−1 broadcasts ahead of its slowest reader,
// which is what keeps small broadcasts cheap on an oversubscribed host
// (8 ranks on 2 cores: 4 sets gave 5–6 µs per 8-byte Bcast, 32 sets
// 1.2–2 µs, OpenMPI 1.5–2.5 µs in the same minutes).
//
// Disagreeing calls: a rank that waits for rank j's part of call seq also
// reads j's desc for it and fails with ErrMismatch if the kind, root, type
// or count differs from its own. On a communicator with a region, calls of
// the kinds that have a shared-memory form post their arrival and desc even
// when their size sends them to the point-to-point algorithms, so that
// ranks whose counts put them on different paths see the disagreement
// instead of waiting for each other forever.
//
// Waiting is mpi.SharedMem.WaitUntil: brief spinning (yielding at once on
// an oversubscribed host), then a futex sleep; a lost rank or an aborted
// job ends the wait with an error.
//
// Only the blocking forms use the region (non-blocking calls may overlap,
// and their order of progress is not fixed); GORUN_COLL_SHM=off turns it
// off (for comparisons).
const (
	shmSets       = 32      // sets of slots: how far a root may run ahead
	shmSlotMax    = 8 << 10 // data bytes per slot: the largest payload of the fast path …
	shmSlotMin    = 512     // … down to this on communicators of many ranks
	shmDataBudget = 4 << 20 // … so that the slots' data takes at most this (see slotBytes)
	shmCtl        = 128     // bytes per control block: two cache lines, so that a neighbour's prefetch does not share them
	shmHdr        = 64      // bytes of a slot's header line
	shmInline     = 48      // payload bytes that fit in the header line
)

// Kinds of calls, for shmDesc.
const (
	shmBarrier = iota + 1
	shmBcast
	shmReduce
	shmAllreduce
	shmAlltoall
	shmAllgather
	shmGather
	shmScatter
	shmFailed = 15 // a rank's part of the call failed; its partners report it
)

// shmOff is GORUN_COLL_SHM=off, read once; tests set it to run the
// point-to-point algorithms on communicators created afterwards.
var shmOff atomic.Bool

func init() { shmOff.Store(os.Getenv("GORUN_COLL_SHM") == "off") }

// shmColl is the shared-memory state of one communicator on one rank.
type shmColl struct {
	m      *mpi.SharedMem
	p, me  int
	ctl    []byte // p control blocks
	slots  []byte // shmSets·p slots, stride bytes each
	slotN  int    // data bytes of a slot: slotBytes(p)
	stride int    // shmHdr + slotN
	seq    atomic.Uint64
	room   atomic.Uint64 // every rank is known to have posted call room
	// cma: every rank can read every other's memory with
	// process_vm_readv, so large calls copy straight between the ranks'
	// buffers (shm_ops.go, shm_cma_linux.go).
	cma bool
}

// Words of a rank's control block (see the layout above).
const (
	ctlOK   = 40 // u32: 1 if this rank could read its right neighbour's memory, 2 if not
	ctlPid  = 44 // u32: this rank's process id
	ctlAddr = 48 // u64: address of this rank's probe word
)

// probeMagic is the value of rank r's probe word: probeMagic ^ r.
const probeMagic = 0x676f72756e636d61

// probe runs when the region is new, on every rank: each publishes its pid
// and the address of a word, reads its right neighbour's word with
// process_vm_readv and publishes whether that worked; cma is set if it
// worked everywhere (it fails under a strict ptrace policy or seccomp).
// Two barriers on the region order the steps.
func (s *shmColl) probe() error {
	word := new(uint64)
	*word = probeMagic ^ uint64(s.me)
	atomic.StoreUint32(s.word32(s.me*shmCtl+ctlPid), uint32(os.Getpid()))
	atomic.StoreUint64(s.word(s.me*shmCtl+ctlAddr), uint64(uintptr(unsafe.Pointer(word))))
	if err := s.barrier(); err != nil {
		return err
	}
	j := (s.me + 1) % s.p
	var got [8]byte
	ok := uint32(2)
	addr := uintptr(atomic.LoadUint64(s.word(j*shmCtl + ctlAddr)))
	if readFrom(s.pid(j), addr, got[:]) == nil && *(*uint64)(unsafe.Pointer(&got[0])) == probeMagic^uint64(j) {
		ok = 1
	}
	atomic.StoreUint32(s.word32(s.me*shmCtl+ctlOK), ok)
	if err := s.barrier(); err != nil {
		return err
	}
	runtime.KeepAlive(word)
	s.cma = true
	for r := range s.p {
		s.cma = s.cma && atomic.LoadUint32(s.word32(r*shmCtl+ctlOK)) == 1
	}
	return nil
}

// pid returns rank j's process id.
func (s *shmColl) pid(j int) int { return int(atomic.LoadUint32(s.word32(j*shmCtl + ctlPid))) }

func (s *shmColl) word32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&s.ctl[off])) }

func shmOf(c *mpi.Comm) *shmColl {
	if c.Size() < 2 {
		return nil
	}
	if c.Err() != nil {
		return nil // the point-to-point path reports it
	}
	st := stateOf(c)
	if s := st.shm.Load(); s != nil {
		if s == noShm {
			return nil
		}
		return s
	}
	s := noShm
	if !shmOff.Load() && c.SharesMemory() {
		p := c.Size()
		slotN := slotBytes(p)
		m, err := c.AllocShared(p*shmCtl + shmSets*p*(shmHdr+slotN))
		if err == nil { // every rank gets the same outcome
			b := m.Bytes()
			s = &shmColl{m: m, p: p, me: c.Rank(), ctl: b[:p*shmCtl], slots: b[p*shmCtl:],
				slotN: slotN, stride: shmHdr + slotN}
			if err := s.probe(); err != nil {
				s = noShm // the job is ending; the next call reports it
			}
		}
	}
	st.shm.Store(s)
	if s == noShm {
		return nil
	}
	return s
}

// noShm marks a communicator that has no region.
var noShm = new(shmColl)

// slotBytes returns the data bytes of a slot for p ranks:
//
//	clamp(shmDataBudget / (shmSets·p), shmSlotMin, shmSlotMax), a multiple of 64
//
// so a region takes p·(shmCtl + shmSets·(64 + slotBytes(p))) bytes: with
// 8 KiB slots 0.5 MiB for 2 ranks and 2.0 MiB for 8 (slots stay at 8 KiB
// up to 16 ranks); with 2 KiB slots 4.1 MiB for 64 ranks.
func slotBytes(p int) int {
	n := shmDataBudget / (shmSets * max(p, 1))
	return min(max(n, shmSlotMin), shmSlotMax) &^ 63
}

// shmDesc describes a call for the disagreement check:
//
//	seq mod 2¹² (12 bits) | kind (4) | element type (8) | root (16) | count mod 2²⁴ (24)
//
// The sequence bits tell a reader whether the descriptor is the one of the
// call it waits for.
func shmDesc(seq uint64, kind, typ, root, count int) uint64 {
	return (seq&0xfff)<<52 | uint64(kind&0xf)<<48 | uint64(typ&0xff)<<40 |
		uint64(root&0xffff)<<24 | uint64(count&0xffffff)
}

// typeCode identifies an element type by kind and size for shmDesc.
func typeCode[T mpi.Numeric]() int {
	t := reflect.TypeFor[T]()
	return int(t.Kind())<<3 ^ int(t.Size())
}

func (s *shmColl) word(off int) *uint64 { return (*uint64)(unsafe.Pointer(&s.ctl[off])) }

// header returns the header line of rank j's slot for call seq.
func (s *shmColl) header(seq uint64, j int) []byte {
	off := (int(seq%shmSets)*s.p + j) * s.stride
	return s.slots[off : off+shmHdr : off+shmHdr]
}

// posted returns the word that says which call rank j last posted in the
// set of call seq.
func (s *shmColl) posted(seq uint64, j int) *uint64 {
	return (*uint64)(unsafe.Pointer(&s.header(seq, j)[0]))
}

// desc returns the word that describes rank j's call seq.
func (s *shmColl) desc(seq uint64, j int) *uint64 {
	return (*uint64)(unsafe.Pointer(&s.header(seq, j)[8]))
}

// slot returns where rank j's payload of n bytes for call seq lies: inline
// in the header line when it fits, else in the slot's data.
func (s *shmColl) slot(seq uint64, j, n int) []byte {
	if n <= shmInline {
		return s.header(seq, j)[16 : 16+n : 16+n]
	}
	off := (int(seq%shmSets)*s.p+j)*s.stride + shmHdr
	return s.slots[off : off+n : off+n]
}

// next draws the number of a new call.
func (s *shmColl) next() uint64 { return s.seq.Add(1) }

// reserve waits until no rank still reads the set of call seq, so that
// this rank may write its slot there and post.
func (s *shmColl) reserve(seq uint64) error {
	if seq < shmSets {
		return nil
	}
	need := seq - shmSets + 1
	if s.room.Load() >= need {
		return nil
	}
	for j := range s.p {
		w := s.posted(need, j)
		if atomic.LoadUint64(w) < need {
			if err := s.m.WaitUntil(func() bool { return atomic.LoadUint64(w) >= need }); err != nil {
				return err
			}
		}
	}
	s.seen(need)
	return nil
}

// seen records that every rank has posted call seq.
func (s *shmColl) seen(seq uint64) {
	if s.room.Load() < seq {
		s.room.Store(seq)
	}
}

// post publishes this rank's part of call seq, described by d: whatever it
// wrote into its slot of seq before becomes visible to the others.
func (s *shmColl) post(seq, d uint64) {
	atomic.StoreUint64(s.desc(seq, s.me), d)
	atomic.StoreUint64(s.posted(seq, s.me), seq)
	s.m.Wake()
}

// await waits until rank j has posted call seq and checks that j describes
// it as d does.
func (s *shmColl) await(j int, seq, d uint64) error {
	w := s.posted(seq, j)
	if atomic.LoadUint64(w) < seq {
		if err := s.m.WaitUntil(func() bool { return atomic.LoadUint64(w) >= seq }); err != nil {
			return err
		}
	}
	// j cannot have reused this header: that needs our post of seq+1.
	if theirs := atomic.LoadUint64(s.desc(seq, j)); theirs != d && theirs>>52 == d>>52 {
		return shmMismatch(j, d, theirs)
	}
	return nil
}

// awaitAll waits for every other rank's part of call seq.
func (s *shmColl) awaitAll(seq, d uint64) error {
	for j := range s.p {
		if j != s.me {
			if err := s.await(j, seq, d); err != nil {
				return err
			}
		}
	}
	s.seen(seq)
	return nil
}

// postOnly posts call seq without a slot (an arrival), after reserve.
func (s *shmColl) postOnly(seq, d uint64) error {
	if err := s.reserve(seq); err != nil {
		return err
	}
	s.post(seq, d)
	return nil
}

// arrival announces a call that runs on the point-to-point algorithms, so
// that ranks on the shared-memory path for the same call see the
// disagreement. It is a no-op without a region.
func (s *shmColl) arrival(kind, typ, root, count int) error {
	if s == nil {
		return nil
	}
	seq := s.next()
	return s.postOnly(seq, shmDesc(seq, kind, typ, root, count))
}

func shmMismatch(j int, mine, theirs uint64) error {
	names := [...]string{"?", "barrier", "bcast", "reduce", "allreduce", "alltoall", "allgather", "gather", "scatter"}
	name := func(d uint64) string {
		k := int(d >> 48 & 0xf)
		if k < len(names) {
			return names[k]
		}
		return names[0]
	}
	if theirs>>48&0xf == shmFailed {
		return fmt.Errorf("collectives: rank %d failed its part of the %s", j, name(mine))
	}
	typ, cause := "", error(nil)
	switch {
	case (mine>>40)&0xff != (theirs>>40)&0xff:
		typ, cause = ", another element type", mpi.ErrType
	case theirs&0xffffff > mine&0xffffff:
		cause = mpi.ErrTruncate
	}
	err := fmt.Errorf("%w: rank %d called %s (root %d, count %d%s) where this rank called %s (root %d, count %d)",
		ErrMismatch, j, name(theirs), theirs>>24&0xffff, theirs&0xffffff, typ, name(mine), mine>>24&0xffff, mine&0xffffff)
	if cause != nil {
		err = fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}

// view returns b as a []T of n elements (b holds at least n·sizeof(T) bytes;
// slots are 64-byte aligned).
func view[T mpi.Numeric](b []byte, n int) []T {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n)
}

// bytesOf returns v's memory as bytes.
func bytesOf[T mpi.Numeric](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*sizeOf[T]())
}
