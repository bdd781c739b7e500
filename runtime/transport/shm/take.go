//go:build linux

package shm

import (
	"sync/atomic"

	"github.com/gorun-hpc/gorun/runtime/internal/sched"
	"github.com/gorun-hpc/gorun/runtime/transport"
)

// Outcomes of Take.
const (
	// Took: the frame was copied into the caller's buffer and consumed.
	Took = iota
	// TakeEmpty: nothing came from that peer before spin said stop.
	TakeEmpty
	// TakeNo: the next record from that peer is not one Take may hand
	// over (another kind, tag, type or context, too long, a synchronous
	// send, a payload in chunks), or the Sink is not quiet, or another
	// goroutine is draining: the caller receives through the Sink instead.
	TakeNo
)

// Take is the direct receive path: it waits for the next frame from world
// rank src and hands it straight to a receiver that wants exactly it,
// without the Sink.
//
// When the next record in src's ring is a data frame with context ctx, tag
// (tag < 0: any), element type typ, no flags and a payload of at most
// len(buf) bytes, either whole in the ring or (below splitMin, 128 KiB)
// posted for cross-memory attach, and the Sink reports itself quiet
// (transport.QuietSink: no pending receive or unexpected frame there that
// the frame would have to be matched against first), Take copies the
// payload into buf (from the ring, or from the sender's memory with
// process_vm_readv), decodes the frame's header into h, consumes the record
// and returns Took. A frame that Take refuses is left in the ring for the
// Sink, in order, and Take returns TakeNo.
//
// While src's ring is empty Take looks again and again. After the first
// empty look, and then every SpinEvery looks, it calls spin: more false
// makes Take return TakeEmpty; yield true makes it give the core to
// other processes (sched_yield) after each empty look until the next
// call. Meanwhile it holds the right to drain (so the record it consumes
// cannot be drained to the Sink under it, and the check of quiet cannot
// go stale through a delivery of this endpoint's own), and, every
// SpinEvery looks, delivers a frame that another peer sent to the Sink
// itself, so that goroutines waiting on them are not starved. spin must
// be short and must not call into this endpoint; a receiver that finds
// the Sink no longer quiet, when a frame arrives or at the next chores,
// stops with TakeNo.
//
// Take is safe for concurrent use: a second caller, or one that finds the
// endpoint's reader or a Poll draining, gets TakeNo. buf is only written on
// Took, except by a cross-memory read that fails midway: the frame is then
// left to the Sink (TakeNo), which is where the caller receives it into
// buf. Take must not be called from inside a Sink method.
func (e *Endpoint) Take(src int, ctx uint32, tag int32, typ uint8, buf []byte, h *transport.Header, spin func() (more, yield bool)) int {
	if e.qsink == nil || uint(src) >= uint(len(e.slot)) || e.slot[src] < 0 || int(e.slot[src]) == e.me {
		return TakeNo
	}
	if !e.qsink.Quiet() || !e.pollMu.TryLock() {
		return TakeNo
	}
	r := &e.in[e.slot[src]]
	res := TakeNo
	if !e.unmapped && !r.p.gone.Load() && !r.active {
		res = e.takeLocked(r, ctx, tag, typ, buf, h, spin)
	}
	e.pollMu.Unlock()
	return res
}

// takeLocked is Take's wait, with pollMu held. The first empty look
// yields at once if spin says so, before any chores: with more ranks than
// cores, the rank this one just sent to may be waiting for this very core.
func (e *Endpoint) takeLocked(r *inRing, ctx uint32, tag int32, typ uint8, buf []byte, h *transport.Header, spin func() (more, yield bool)) int {
	// The record at head cannot move while pollMu is held.
	word := word64(r.data, int(r.head&r.mask))
	w := atomic.LoadUint64(word) // acquire
	for first := true; w == 0; first = false {
		more, yield := spin()
		if !more {
			return TakeEmpty
		}
		if w = watch(word, SpinEvery, yield); w != 0 {
			break
		}
		// Nothing yet: do the chores off the critical path.
		if !e.qsink.Quiet() {
			return TakeNo
		}
		r.publishLag() // what the last Take consumed
		if first {
			// A sleeping reader would make every sender ring the bell:
			// wake it; it sees the lock taken, or awake, and naps.
			e.awake.Store(1)
			e.peers[e.me].ring()
		}
		e.drainOthers(r)
	}
	if !e.qsink.Quiet() {
		return TakeNo
	}
	return e.takeRecord(r, w, ctx, tag, typ, buf, h)
}

// watch looks at *word up to n times, with yield giving the core away
// (sched_yield) before each look, and returns the first value that is
// not zero, or zero. It is Take's look, kept apart so that little is saved
// and restored around each sched_yield. Without yield it is sched.Watch,
// which gives the processor its spin-wait hint between looks: a loop of
// bare loads made a small message's half round trip 5–15% slower (the
// write that ends the wait discards the loads speculated past it).
//
//go:noinline
func watch(word *uint64, n int, yield bool) uint64 {
	if !yield {
		return sched.Watch(word, n)
	}
	for ; n > 0; n-- {
		sched.Yield()
		if w := atomic.LoadUint64(word); w != 0 { // acquire
			return w
		}
	}
	return 0
}

// drainOthers delivers at most one frame from a ring other than skip.
// pollMu is held.
func (e *Endpoint) drainOthers(skip *inRing) {
	for i := range e.in {
		o := &e.in[i]
		if o == skip {
			continue
		}
		o.publishLag()
		if o.ready(o.head) && !o.p.gone.Load() && e.drainRing(o, 1) > 0 {
			return
		}
	}
}

// takeRecord takes the record with header word w at r.head if Take may
// hand it over. Anything unusual, malformed included, is left to
// drainRecords, which knows how to report it. The space is published
// later, off the receiver's critical path: by the next Take's wait, or any
// drain (drainLocked), or here once a sixteenth of the ring is unpublished.
func (e *Endpoint) takeRecord(r *inRing, w uint64, ctx uint32, tag int32, typ uint8, buf []byte, h *transport.Header) int {
	pos := r.head & r.mask
	size, rtyp := uint64(uint32(w)), byte(w>>32)
	off := pos + recHdrSize
	end := off + transport.HeaderSize
	if (rtyp != recFrame && rtyp != recCMA) || w>>40 != 0 || size < recHdrSize+transport.HeaderSize ||
		size > r.mask+1-recAlign {
		return TakeNo
	}
	if h.Decode(r.data[off:end]) != nil {
		return TakeNo
	}
	if h.Kind != transport.KindData || h.Flags != 0 || h.Context != ctx ||
		(tag >= 0 && h.Tag != tag) || h.Type != typ || int(h.Len) > len(buf) ||
		int(h.Src) != r.p.rank || int(h.Dst) != e.rank {
		return TakeNo
	}
	if rtyp == recCMA {
		if size != cmaRecSize || int(h.Len) >= splitMin || e.noCMA.Load() ||
			!r.takeCMA(buf[:h.Len], r.data[end:end+16]) {
			return TakeNo
		}
	} else {
		if size != recHdrSize+transport.HeaderSize+uint64(h.Len) {
			return TakeNo
		}
		// A record's first 64 bytes, its header, never wrap; its payload may.
		copyOut(buf[:h.Len], r.data, r.mask, r.head+recHdrSize+transport.HeaderSize)
	}
	r.head += align(size)
	if r.head-r.pub >= (r.mask+1)/16 {
		r.publishHead()
	}
	return Took
}

// takeCMA reads the payload that the cross-memory-attach descriptor d
// {addr u64, seq u32, pid u32} describes straight into buf, for Take, and
// releases the sender. It reports false when the descriptor was revoked,
// or when the read failed: then it hands its claim back (reading → posted)
// for drainRecords' readCMA, which reads again or has the sender fall back
// to the ring, and reports why. buf may then hold part of the payload.
// pollMu is held.
func (r *inRing) takeCMA(buf, d []byte) bool {
	addr, seq := cmaDescriptor(d)
	base := seq << cmaShift
	if !atomic.CompareAndSwapUint32(r.ctl.cma, base|cmaPosted, base|cmaReading) {
		return false // revoked by a sender that gave up
	}
	if err := r.readRemote(r.p.pid, buf, addr); err != nil {
		// The sender waits for done or refused and never revokes a
		// descriptor that is being read, so it is still waiting.
		atomic.StoreUint32(r.ctl.cma, base|cmaPosted)
		return false
	}
	atomic.StoreUint32(r.ctl.cma, base|cmaDone)
	r.ctl.wakeProducer()
	return true
}
