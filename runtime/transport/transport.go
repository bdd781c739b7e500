// Package transport is the contract between the message-passing engine in
// package mpi and the transports that move bytes between ranks (self,
// in-process, TCP, and shared memory: package shm).
//
// A transport only moves frames: a fixed 32-byte Header followed by Header.Len
// payload bytes. It never interprets tags or contexts and never matches
// messages: matching happens once, above every transport, in package mpi (the
// lesson of MPICH's CH4 and Open MPI's PML/BTL split).
//
// Ordering contract: frames that one rank sends to another through one
// Endpoint are handed to the receiver's Sink in the order the Send calls
// returned. Send calls that run concurrently have no order between them.
package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderSize is the encoded size of a Header in bytes.
const HeaderSize = 32

// Kind says what a frame is for.
type Kind uint8

// Frame kinds.
const (
	// KindData carries a message payload to be matched by the receiver.
	KindData Kind = 1
	// KindAck tells a synchronous-mode sender that its message (identified
	// by Seq) was matched by a receive. It has no payload.
	KindAck Kind = 2
	// KindBye announces an orderly close of the sending endpoint: a
	// connection that ends after a Bye is not a lost peer.
	KindBye Kind = 3

	kindMax = KindBye
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindAck:
		return "ack"
	case KindBye:
		return "bye"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Header flags.
const (
	// FlagSync marks a synchronous-mode message: the receiver answers with a
	// KindAck frame carrying the same Seq once a receive has matched it.
	FlagSync uint8 = 1 << 0
)

// Header is the fixed-size envelope in front of every payload.
//
// Encoded little-endian, 32 bytes:
//
//	0  Kind   u8     4  Context u32   16 Tag i32   28 Len u32
//	1  Flags  u8     8  Src     i32   20 Seq u64
//	2  Type   u8    12  Dst     i32
//	3  (zero) u8
type Header struct {
	Kind    Kind
	Flags   uint8
	Type    uint8  // element type code, defined by package mpi; opaque here
	Context uint32 // communicator matching context
	Src     int32  // world rank of the sender
	Dst     int32  // world rank of the receiver
	Tag     int32
	Seq     uint64 // synchronous-send id, echoed in the KindAck frame
	Len     uint32 // payload bytes that follow the header
}

// MaxPayload is the largest payload a single frame can carry.
const MaxPayload = 1<<32 - 1

// Put encodes h into b, which must hold at least HeaderSize bytes.
func (h *Header) Put(b []byte) {
	_ = b[HeaderSize-1] // bounds check hint
	b[0] = byte(h.Kind)
	b[1] = h.Flags
	b[2] = h.Type
	b[3] = 0
	binary.LittleEndian.PutUint32(b[4:], h.Context)
	binary.LittleEndian.PutUint32(b[8:], uint32(h.Src))
	binary.LittleEndian.PutUint32(b[12:], uint32(h.Dst))
	binary.LittleEndian.PutUint32(b[16:], uint32(h.Tag))
	binary.LittleEndian.PutUint64(b[20:], h.Seq)
	binary.LittleEndian.PutUint32(b[28:], h.Len)
}

// AppendBinary appends the encoding of h to b.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	var buf [HeaderSize]byte
	h.Put(buf[:])
	return append(b, buf[:]...), nil
}

// ErrBadHeader is returned by ParseHeader for bytes that are not a header.
var ErrBadHeader = errors.New("transport: bad frame header")

// ParseHeader decodes a header from the first HeaderSize bytes of b. It
// rejects short input, unknown kinds, a non-zero reserved byte, negative
// ranks, and control frames that claim a payload. It reads bytes from the
// network, so it trusts nothing.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	err := h.Decode(b)
	return h, err
}

// Decode is ParseHeader into h, which it overwrites (and leaves undefined on
// error). Transports decode into memory of their own on the hot path: it
// saves copying the Header through a temporary.
func (h *Header) Decode(b []byte) error {
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: %d bytes, need %d", ErrBadHeader, len(b), HeaderSize)
	}
	b = b[:HeaderSize] // one bounds check for the loads below
	h.Kind, h.Flags, h.Type = Kind(b[0]), b[1], b[2]
	h.Context = binary.LittleEndian.Uint32(b[4:])
	h.Src = int32(binary.LittleEndian.Uint32(b[8:]))
	h.Dst = int32(binary.LittleEndian.Uint32(b[12:]))
	h.Tag = int32(binary.LittleEndian.Uint32(b[16:]))
	h.Seq = binary.LittleEndian.Uint64(b[20:])
	h.Len = binary.LittleEndian.Uint32(b[28:])
	// One test on the hot path; badHeader says which rule failed.
	if h.Kind-1 >= kindMax || b[3] != 0 || h.Src|h.Dst < 0 || (h.Kind != KindData && h.Len != 0) {
		return badHeader(h, b[3])
	}
	return nil
}

// badHeader explains why ParseHeader rejected h (with reserved byte res).
func badHeader(h *Header, res byte) error {
	switch {
	case h.Kind == 0 || h.Kind > kindMax:
		return fmt.Errorf("%w: unknown kind %d", ErrBadHeader, h.Kind)
	case res != 0:
		return fmt.Errorf("%w: reserved byte is %d", ErrBadHeader, res)
	case h.Src < 0 || h.Dst < 0:
		return fmt.Errorf("%w: negative rank (src %d, dst %d)", ErrBadHeader, h.Src, h.Dst)
	}
	return fmt.Errorf("%w: %s frame with %d payload bytes", ErrBadHeader, h.Kind, h.Len)
}

// CheckSend reports why the frame h with payload must not be sent by the
// endpoint of rank src, or nil. Every transport's Send calls it: the length
// must match, only data and ack frames go through Send (Close sends Bye),
// acks carry nothing, and the source is the endpoint's own rank. Errors
// have no package prefix; the transport adds its own.
func CheckSend(src int, h *Header, payload []byte) error {
	if h.Kind == KindData && int(h.Len) == len(payload) && uint64(len(payload)) <= MaxPayload &&
		int(h.Src) == src && h.Dst >= 0 {
		return nil // the common case, in one test
	}
	switch {
	case uint64(len(payload)) > MaxPayload:
		return fmt.Errorf("%d-byte payload: %w", len(payload), ErrTooLarge)
	case int(h.Len) != len(payload):
		return fmt.Errorf("header says %d payload bytes, got %d", h.Len, len(payload))
	case h.Kind == KindAck && h.Len != 0:
		return fmt.Errorf("ack frame with %d payload bytes", h.Len)
	case h.Kind != KindData && h.Kind != KindAck:
		return fmt.Errorf("cannot send %s frames", h.Kind)
	case int(h.Src) != src:
		return fmt.Errorf("frame from rank %d sent on the endpoint of rank %d", h.Src, src)
	case h.Dst < 0:
		return fmt.Errorf("negative destination rank %d", h.Dst)
	}
	return nil
}

// An Endpoint is this process's attachment to one transport. It sends frames
// to the peers that transport reaches. Implementations are safe for
// concurrent use by any number of goroutines.
type Endpoint interface {
	// Send writes h and then payload (len(payload) == h.Len) to rank h.Dst.
	// It returns once payload has been copied or written out: the caller may
	// reuse payload when Send returns. Send blocks while the transport
	// applies back-pressure; it returns ErrClosed after Close and an error
	// wrapping ErrPeerLost when the peer is gone.
	Send(h Header, payload []byte) error
	// Close sends KindBye to connected peers, stops every goroutine of the
	// endpoint and waits for them. It is idempotent.
	Close() error
}

// A Poller is an Endpoint that can make progress in the caller's goroutine:
// an optional capability, found by type assertion. The engine calls Poll
// while a blocked operation spins briefly before parking, which saves the
// cost of waking a sleeping thread when a reply is only microseconds away.
type Poller interface {
	// Poll hands frames that have already arrived to the Sink, from the
	// calling goroutine, and reports whether it made progress: handed any,
	// or took in part of one still arriving (callers that wait keep
	// spinning while frames make progress). It may hand only some of them
	// (shm hands one a call); callers that wait poll again. It never
	// blocks; concurrent callers are safe (all but one may return false at
	// once).
	Poll() bool
}

// A BatchPoller is a Poller that can also hand every frame that has
// arrived in one call, where Poll hands only some (shm: one): an optional
// capability, found by type assertion. A waiter that needs many frames
// (WaitAll) uses it; one waiting for a single reply uses Poll, which
// returns as soon as that reply may be in.
type BatchPoller interface {
	Poller
	// PollAll is Poll without the limit: it hands every frame that has
	// arrived, and reports whether it made progress. Same rules as Poll.
	PollAll() bool
}

// A PeerFailer is an Endpoint that can be told that a peer is gone before
// its own connections say so: an optional capability, found by type
// assertion. The engine calls it when the launcher reports a failed rank
// or ends the job (a lost host, say), so that a Send waiting on the network
// for a peer that will never answer (a dial to a cut-off host runs into its
// deadline only after seconds) fails at once with the reason.
type PeerFailer interface {
	// FailPeer makes Sends to rank, or to every rank when rank < 0, fail
	// with an error wrapping ErrPeerLost and cause: Sends waiting for a
	// connection or for room to write return now, later ones at once. A
	// peer failed this way is not reported to the Sink as lost. It never
	// blocks and may be called from any goroutine, more than once.
	FailPeer(rank int, cause error)
}

// A Sink receives inbound frames; the mpi engine implements it. Transports
// call it from their receiving goroutines: calls for frames from one peer are
// sequential and in arrival order, calls for different peers may be
// concurrent. Sink methods must not block on the network.
type Sink interface {
	// Buffer is called for each KindData frame once its header has arrived.
	// It returns where the h.Len payload bytes must be written: a posted
	// receive buffer (no extra copy) or a fresh buffer for an unexpected
	// message. The returned slice has length h.Len and belongs to the
	// transport until Deliver is called.
	Buffer(h Header) []byte
	// Deliver reports that the payload of h is complete in buf (the slice
	// Buffer returned; nil for frames without payload). Every frame kind is
	// delivered, data frames only after their Buffer call.
	Deliver(h Header, buf []byte)
	// PeerLost reports that the connection to rank ended without a Bye, or
	// broke. Operations waiting on that rank should fail with err.
	PeerLost(rank int, err error)
}

// A FrameSink is a Sink that can take a whole frame in one call: an
// optional capability, found by type assertion. A transport that holds a
// complete frame's payload in memory of its own (a shared-memory ring
// record, the sender's buffer) calls DeliverFrame instead of Buffer,
// copy and Deliver, which saves the Sink a second round of locking and
// bookkeeping on the small-message path.
type FrameSink interface {
	Sink
	// DeliverFrame hands over frame h (any kind) with its complete payload
	// (len(payload) == h.Len; nil for frames without payload). payload is
	// valid only during the call: the Sink copies what it keeps. The same
	// ordering rules as for Buffer and Deliver apply.
	DeliverFrame(h Header, payload []byte)
}

// A FrameBatchSink is a FrameSink that takes a run of whole data frames in
// one call, under one lock: an optional capability, found by type
// assertion. A transport that drains several frames at once (a window of
// small messages waiting in a shared-memory ring) hands them over with
// DeliverFrames instead of one DeliverFrame each.
type FrameBatchSink interface {
	FrameSink
	// DeliverFrames delivers, in order, every frame src.NextFrame yields,
	// calling it again after each delivery until it returns false. Each
	// frame is handled as by DeliverFrame. DeliverFrames may hold the
	// Sink's lock throughout, so src must not call into the Sink.
	DeliverFrames(src FrameSource)
}

// A FrameSource yields the frames of one FrameBatchSink.DeliverFrames call.
type FrameSource interface {
	// NextFrame sets *h to the next data frame and returns its complete
	// payload (len(payload) == h.Len), valid until the next call; false
	// when the transport has no further frame to hand over this way. It
	// is called only from DeliverFrames, after the previous frame has been
	// delivered, so a call may release the previous frame's memory.
	NextFrame(h *Header) (payload []byte, ok bool)
}

// A QuietSink is a Sink that can say when a frame may bypass it: an
// optional capability, found by type assertion, that lets a transport hand
// a frame straight to a receiver waiting for exactly it (shm.Endpoint.Take).
type QuietSink interface {
	Sink
	// Quiet reports whether the Sink holds nothing a newly arrived data
	// frame would have to be matched against first: no pending receive,
	// no probe, no unexpected frame. The transport calls it while it
	// holds the right to deliver frames, so no delivery of its own races
	// with the answer; it must be cheap and must not block.
	Quiet() bool
}

// Errors returned by transports. Transports wrap them with detail; test with
// errors.Is.
var (
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("transport: endpoint closed")
	// ErrPeerLost means the peer's process or connection is gone.
	ErrPeerLost = errors.New("transport: peer lost")
	// ErrTooLarge is returned for a payload above MaxPayload.
	ErrTooLarge = errors.New("transport: payload too large")
)
