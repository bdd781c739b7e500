package mpi

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// Send sends the elements of buf to rank dst of c with tag. It returns when
// buf may be reused; the receiver need not have posted a receive yet (the
// message is buffered at the receiver). Sending to ProcNull does nothing.
//
// Errors: ErrRank, ErrTag, ErrPeerLost when dst is gone, ErrAborted when the
// job is ending, ErrFinalized after Finalize.
func Send[T Numeric](c *Comm, buf []T, dst, tag int) error {
	return c.send("send", asBytes(buf), typeCode[T](), dst, tag)
}

// Ssend is a synchronous-mode send: it returns only once the receiver has
// matched the message with a receive. Two ranks that Ssend to each other
// before receiving therefore deadlock, as MPI specifies; coursework uses it
// to show exactly that.
func Ssend[T Numeric](c *Comm, buf []T, dst, tag int) error {
	r, err := c.ssend("ssend", asBytes(buf), typeCode[T](), dst, tag)
	if err != nil || r == nil {
		return err
	}
	c.w.wait(r)
	err = r.err
	r.release()
	return err
}

// Recv receives a message from rank src (or AnySource) with tag (or AnyTag)
// into buf, which must be large enough: a longer message fails with
// ErrTruncate, a message of another element type with ErrType (both consume
// the message). The Status gives the actual source, tag and element count.
// Receiving from ProcNull returns at once with Source ProcNull and Count 0.
func Recv[T Numeric](c *Comm, buf []T, src, tag int) (Status, error) {
	var st Status
	b, typ := asBytes(buf), typeCode[T]()
	took, spun := c.recvDirect(&st, b, typ, src, tag)
	if took {
		return st, nil
	}
	r, err := c.recvRequest("recv", src, tag)
	if err != nil || r == nil {
		return procNullStatus(), err
	}
	r.buf, r.typ = b, typ
	c.w.eng.post(r)
	if spun {
		r.park()
	} else {
		c.w.wait(r)
	}
	st, err = r.status, r.err
	r.stash()
	return st, err
}

// Sendrecv sends sendbuf to dst and receives into recvbuf from src in one
// call that cannot deadlock against a matching Sendrecv on the peer. It is
// the usual halo exchange.
//
// sendbuf and recvbuf may be the same slice, or overlap (MPI's
// Sendrecv_replace): then the message is sent before the receive is
// posted, so what goes out is what the buffer held when the call began.
func Sendrecv[T, U Numeric](c *Comm, sendbuf []T, dst, sendtag int, recvbuf []U, src, recvtag int) (Status, error) {
	// A small receive from a rank on this host is not posted first: Send
	// never waits for the peer to post a receive (small payloads are
	// buffered at the receiver, large ones read by its progress engine
	// whatever it has posted), so sending first cannot deadlock, and the
	// receive may then take the direct path (recvDirect). A large one is
	// posted first so that its payload lands in recvbuf with one copy.
	if sb, rb := asBytes(sendbuf), asBytes(recvbuf); overlap(sb, rb) || (len(rb) <= directMax && c.shmRoute(src) != nil) {
		if err := c.send("sendrecv", sb, typeCode[T](), dst, sendtag); err != nil {
			return Status{}, err
		}
		return Recv(c, recvbuf, src, recvtag)
	}
	r, err := c.recvRequest("sendrecv", src, recvtag)
	if err != nil {
		return Status{}, err
	}
	if r != nil {
		r.buf = asBytes(recvbuf)
		r.typ = typeCode[U]()
		c.w.eng.post(r)
	}
	if err := Send(c, sendbuf, dst, sendtag); err != nil {
		if r != nil {
			c.w.eng.cancel(r, err)
			c.w.wait(r) // matched already: its payload is landing in recvbuf
			r.release()
		}
		return Status{}, err
	}
	if r == nil {
		return procNullStatus(), nil
	}
	c.w.wait(r)
	st, err := r.status, r.err
	r.release()
	return st, err
}

// Probe waits until a message from src (or AnySource) with tag (or AnyTag)
// can be received, and returns its Status without receiving it. Use
// Status.Count to size the receive buffer. If other goroutines receive on
// the same communicator concurrently, the probed message may be taken by
// them first.
func Probe(c *Comm, src, tag int) (Status, error) {
	r, err := c.recvRequest("probe", src, tag)
	if err != nil || r == nil {
		return procNullStatus(), err
	}
	r.probe = true
	c.w.eng.post(r)
	c.w.wait(r)
	st, err := r.status, r.err
	r.release()
	return st, err
}

// Iprobe reports whether a message from src with tag can be received now,
// and its Status if so. It drives progress: when nothing matches yet, it
// hands what the transports have received to the matching engine and looks
// again, so a loop of Iprobe (overlapping work with waiting) sees a message
// as soon as it has arrived.
func Iprobe(c *Comm, src, tag int) (Status, bool, error) {
	r, err := c.recvRequest("iprobe", src, tag)
	if err != nil {
		return Status{}, false, err
	}
	if r == nil {
		return procNullStatus(), true, nil
	}
	st, ok, err := c.w.eng.iprobe(c, r.pattern)
	if !ok && err == nil {
		// Drive progress, as Test does: a loop of Iprobe must see what
		// has arrived without waiting for a transport's reader.
		c.w.pollAll()
		st, ok, err = c.w.eng.iprobe(c, r.pattern)
	}
	r.release()
	if err != nil {
		return Status{}, false, c.errorf("iprobe", src, tag, err)
	}
	return st, ok, nil
}

func procNullStatus() Status { return Status{Source: ProcNull, Tag: AnyTag} }

// recvRequest validates a receive or probe and builds its request; a nil
// request with nil error means src is ProcNull.
func (c *Comm) recvRequest(op string, src, tag int) (*request, error) {
	if null, err := c.checkRecv(op, src, tag); err != nil || null {
		return nil, err
	}
	r := newRequest(c, op, src, tag)
	r.pattern = c.pattern(src, tag)
	return r, nil
}

// checkRecv validates a receive or probe from src with tag; null reports
// that src is ProcNull (and err is nil).
func (c *Comm) checkRecv(op string, src, tag int) (null bool, err error) {
	// The common case in one test: a live communicator, a rank of it, a
	// tag or AnyTag (tag+1 is unsigned-compared, so AnyTag passes).
	if uint(src) < uint(c.size) && uint(tag+1) <= MaxTag+1 && c.usable() == nil {
		return false, nil
	}
	if err := c.usable(); err != nil {
		return false, c.errorf(op, src, tag, err)
	}
	if err := c.checkPeer(src, true); err != nil {
		return false, c.errorf(op, src, tag, err)
	}
	if err := checkTag(tag, true); err != nil {
		return false, c.errorf(op, src, tag, err)
	}
	return src == ProcNull, nil
}

// header validates a send and fills in its frame header h; ok is false for
// ProcNull.
func (c *Comm) header(h *transport.Header, op string, b []byte, typ uint8, dst, tag int) (ok bool, err error) {
	if !(uint(dst) < uint(c.size) && uint(tag) <= MaxTag && uint64(len(b)) <= transport.MaxPayload && c.usable() == nil) {
		if err := c.usable(); err != nil {
			return false, c.errorf(op, dst, tag, err)
		}
		if err := c.checkPeer(dst, false); err != nil {
			return false, c.errorf(op, dst, tag, err)
		}
		if err := checkTag(tag, false); err != nil {
			return false, c.errorf(op, dst, tag, err)
		}
		if dst == ProcNull {
			return false, nil
		}
		if uint64(len(b)) > transport.MaxPayload {
			return false, c.errorf(op, dst, tag, fmt.Errorf("%w: %d bytes is more than one message can carry (%d)", ErrCount, len(b), uint64(transport.MaxPayload)))
		}
	}
	// Field by field: a composite literal is built in a temporary and
	// copied with wide loads that stall on the narrow stores just made.
	h.Kind, h.Type = transport.KindData, typ
	h.Context = c.ctx
	h.Src, h.Dst, h.Tag = int32(c.w.rank), c.toWorld(dst), int32(tag)
	h.Len = uint32(len(b))
	return true, nil
}

func (c *Comm) send(op string, b []byte, typ uint8, dst, tag int) error {
	var h transport.Header
	if ok, err := c.header(&h, op, b, typ, dst, tag); !ok {
		return err
	}
	if err := c.w.eng.send(&h, b, nil); err != nil {
		return c.errorf(op, dst, tag, mapTransportErr(err))
	}
	return nil
}

// ssend starts a synchronous send; the returned request completes when the
// receiver matched the message. A nil request with nil error means ProcNull.
func (c *Comm) ssend(op string, b []byte, typ uint8, dst, tag int) (*request, error) {
	var h transport.Header
	if ok, err := c.header(&h, op, b, typ, dst, tag); !ok {
		return nil, err
	}
	r := newRequest(c, op, dst, tag)
	if err := c.w.eng.send(&h, b, r); err != nil {
		r.release()
		return nil, c.errorf(op, dst, tag, mapTransportErr(err))
	}
	return r, nil
}

// mapTransportErr makes transport failures satisfy errors.Is with the mpi
// sentinels.
func mapTransportErr(err error) error {
	switch {
	case errors.Is(err, ErrPeerLost), errors.Is(err, ErrAborted):
		return err
	case errors.Is(err, transport.ErrPeerLost):
		return fmt.Errorf("%w: %w", ErrPeerLost, err)
	case errors.Is(err, transport.ErrClosed):
		return fmt.Errorf("%w: %w", ErrFinalized, err)
	}
	return err
}

// overlap reports whether a and b share memory.
func overlap(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}
