package rendezvous

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorun-hpc/gorun/launcher/internal/frame"
)

// AuthLabel is the auth label of the rendezvous protocol (see package
// runtime/auth).
const AuthLabel = "gorun-rendezvous"

// Limits of the protocol. Clients check them before sending; every decoder
// of network bytes checks them before allocating.
const (
	// MaxKeyLen is the longest key, in bytes. Keys must not be empty.
	MaxKeyLen = 256
	// MaxValueLen is the longest value, in bytes.
	MaxValueLen = 64 << 10
	// MaxTextLen is the longest text (abort message, event text, error
	// reply), in bytes. Longer texts given to Abort or Notify are truncated.
	MaxTextLen = 4 << 10
	// MaxKeys is the number of distinct keys a job's store holds.
	MaxKeys = 1 << 16

	maxFrameLen   = 1 << 20
	maxStoreBytes = 128 << 20
	numFields     = 8
)

type op uint8

const (
	opHello    op = 1
	opSet      op = 2
	opGet      op = 3
	opFence    op = 4
	opAbort    op = 5
	opFinalize op = 6
	opCancel   op = 7
	opLost     op = 8

	opWelcome op = 16
	opReject  op = 17
	opReply   op = 18
	opEvent   op = 19
)

func (o op) known() bool {
	return (o >= opHello && o <= opLost) || (o >= opWelcome && o <= opEvent)
}

// Reasons carried in the code of a reject frame.
const (
	rejectBadRank   = 1
	rejectRankTaken = 2
	rejectProtocol  = 3
	rejectClosing   = 4
)

// Codes of an error reply (any non-zero code is an error).
const (
	replyOK      = 0
	replyInvalid = 1 // malformed request (empty key, ...)
	replyFull    = 2 // store or per-connection limits reached
)

// errFrame is wrapped by every decoding error.
var errFrame = errors.New("rendezvous: malformed frame")

// msg is the one frame body of the protocol; which fields matter depends on Op.
type msg struct {
	Op    op
	ID    uint64
	Rank  int
	Code  int
	Kind  uint8
	Key   string
	Value []byte
	Text  string
}

// encodeFrame returns m as a complete frame (length prefix and body).
// It refuses fields over the protocol's limits.
func encodeFrame(m *msg) ([]byte, error) {
	switch {
	case len(m.Key) > MaxKeyLen:
		return nil, fmt.Errorf("%w: key of %d bytes exceeds %d", ErrInvalid, len(m.Key), MaxKeyLen)
	case len(m.Value) > MaxValueLen:
		return nil, fmt.Errorf("%w: value of %d bytes exceeds %d", ErrInvalid, len(m.Value), MaxValueLen)
	case len(m.Text) > MaxTextLen:
		return nil, fmt.Errorf("%w: text of %d bytes exceeds %d", ErrInvalid, len(m.Text), MaxTextLen)
	case !fitsInt32(int64(m.Rank)) || !fitsInt32(int64(m.Code)):
		return nil, fmt.Errorf("%w: rank or code out of range", ErrInvalid)
	}
	var buf bytes.Buffer
	buf.Grow(4 + 32 + len(m.Key) + len(m.Value) + len(m.Text))
	buf.Write([]byte{0, 0, 0, 0})
	e := msgpack.NewEncoder(&buf)
	err := errors.Join(
		e.EncodeArrayLen(numFields),
		e.EncodeUint(uint64(m.Op)),
		e.EncodeUint(m.ID),
		e.EncodeInt(int64(m.Rank)),
		e.EncodeInt(int64(m.Code)),
		e.EncodeUint(uint64(m.Kind)),
		e.EncodeString(m.Key),
		e.EncodeBytes(m.Value),
		e.EncodeString(m.Text),
	)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: encode frame: %w", err)
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// readFrame reads one frame from r and decodes it. It allocates at most
// maxFrameLen bytes for the body, and only after checking the length.
func readFrame(r io.Reader) (msg, error) {
	body, err := frame.Read(r, maxFrameLen)
	if errors.Is(err, frame.ErrLength) {
		return msg{}, fmt.Errorf("%w: %w", errFrame, err)
	}
	if err != nil {
		return msg{}, err
	}
	return decodeBody(body)
}

// decodeBody decodes one frame body. It never allocates more than the caps
// of the fields it reads and never recurses.
func decodeBody(body []byte) (msg, error) {
	var m msg
	rd := bytes.NewReader(body)
	d := msgpack.NewDecoder(rd)
	n, err := d.DecodeArrayLen()
	if err != nil {
		return m, fmt.Errorf("%w: %w", errFrame, err)
	}
	if n != numFields {
		return m, fmt.Errorf("%w: array of %d elements, want %d", errFrame, n, numFields)
	}
	o, err := d.DecodeUint64()
	if err != nil {
		return m, fmt.Errorf("%w: op: %w", errFrame, err)
	}
	if o > math.MaxUint8 || !op(o).known() {
		return m, fmt.Errorf("%w: unknown op %d", errFrame, o)
	}
	m.Op = op(o)
	if m.ID, err = d.DecodeUint64(); err != nil {
		return m, fmt.Errorf("%w: id: %w", errFrame, err)
	}
	if m.Rank, err = decodeInt32(d); err != nil {
		return m, fmt.Errorf("%w: rank: %w", errFrame, err)
	}
	if m.Code, err = decodeInt32(d); err != nil {
		return m, fmt.Errorf("%w: code: %w", errFrame, err)
	}
	k, err := d.DecodeUint64()
	if err != nil {
		return m, fmt.Errorf("%w: kind: %w", errFrame, err)
	}
	if k > math.MaxUint8 {
		return m, fmt.Errorf("%w: kind %d out of range", errFrame, k)
	}
	m.Kind = uint8(k)
	key, err := decodeBytes(d, rd, MaxKeyLen)
	if err != nil {
		return m, fmt.Errorf("%w: key: %w", errFrame, err)
	}
	m.Key = string(key)
	if m.Value, err = decodeBytes(d, rd, MaxValueLen); err != nil {
		return m, fmt.Errorf("%w: value: %w", errFrame, err)
	}
	text, err := decodeBytes(d, rd, MaxTextLen)
	if err != nil {
		return m, fmt.Errorf("%w: text: %w", errFrame, err)
	}
	m.Text = string(text)
	if rd.Len() != 0 {
		return m, fmt.Errorf("%w: %d trailing bytes", errFrame, rd.Len())
	}
	return m, nil
}

func fitsInt32(v int64) bool { return v >= math.MinInt32 && v <= math.MaxInt32 }

func decodeInt32(d *msgpack.Decoder) (int, error) {
	v, err := d.DecodeInt64()
	if err != nil {
		return 0, err
	}
	if !fitsInt32(v) {
		return 0, fmt.Errorf("%d out of range", v)
	}
	return int(v), nil
}

// decodeBytes reads a str, bin or nil of at most limit bytes (and no more
// than rd, the decoder's source, still holds); nil gives nil.
func decodeBytes(d *msgpack.Decoder, rd *bytes.Reader, limit int) ([]byte, error) {
	n, err := d.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	if n > limit {
		return nil, fmt.Errorf("length %d exceeds %d", n, limit)
	}
	if n > rd.Len() {
		return nil, fmt.Errorf("length %d exceeds the %d bytes left", n, rd.Len())
	}
	b := make([]byte, n)
	if err := d.ReadFull(b); err != nil {
		return nil, err
	}
	return b, nil
}

// truncateText shortens s to at most MaxTextLen bytes without splitting a
// UTF-8 sequence.
func truncateText(s string) string {
	if len(s) <= MaxTextLen {
		return s
	}
	cut := MaxTextLen
	for cut > 0 && s[cut]&0xC0 == 0x80 { // s[cut] continues a sequence
		cut--
	}
	return s[:cut]
}

// checkKV validates a key and value against the protocol's limits.
func checkKV(key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrInvalid, len(key), MaxKeyLen)
	}
	if len(value) > MaxValueLen {
		return fmt.Errorf("%w: value of %d bytes exceeds %d", ErrInvalid, len(value), MaxValueLen)
	}
	return nil
}
