package launcher

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

// DaemonAuthLabel is the label of the auth exchange (package runtime/auth)
// between a launcher and a gorun daemon, keyed with the shared secret.
const DaemonAuthLabel = "gorun-daemon"

// Limits of the daemon protocol. Encoders refuse to exceed them and the
// decoder checks each one before allocating, so a frame never costs more
// than a small multiple of its length.
const (
	maxDaemonFrame = 4 << 20  // frame body, bytes
	maxOutputChunk = 64 << 10 // output bytes per frame
	maxExeChunk    = 1 << 20  // staged executable bytes per frame
	maxExeSize     = 1 << 30  // whole staged executable
	maxArgLen      = 128 << 10
	maxPathLen     = 4096
	maxTextLen     = 4 << 10
	maxJobIDLen    = 32
	maxArgs        = 4096 // argv entries, env entries
	maxRankEnv     = 64   // per-rank env entries
	maxHostRanks   = 4096 // ranks in one spawn request
	maxRank        = 1 << 24
	shaLen         = 32
)

// dop is the operation of a daemon protocol frame.
type dop uint8

// Launcher → daemon.
const (
	dopSpawn    dop = 1 // [op, job, path, dir, argv, env, sha|nil, ranks]; ranks = [[rank, env]...]
	dopSignal   dop = 2 // [op, rank, signal]
	dopEnd      dop = 3 // [op]
	dopPing     dop = 4 // [op] (both directions)
	dopExeQuery dop = 5 // [op, sha]
	dopExeChunk dop = 6 // [op, data]
	dopExeDone  dop = 7 // [op, sha]
)

// Daemon → launcher.
const (
	dopHello     dop = 16 // [op, hostname]
	dopStarted   dop = 17 // [op, rank, pid]
	dopOutput    dop = 18 // [op, rank, stream, data]
	dopExit      dop = 19 // [op, rank, code, signal]
	dopError     dop = 20 // [op, kind, text]
	dopExeStatus dop = 21 // [op, have]
	dopEnded     dop = 22 // [op]
)

// Streams of an output frame.
const (
	streamStdout = 1
	streamStderr = 2
)

// Kinds of an error frame.
const (
	errKindFailure = 1 // the daemon could not do it (fork failed, disk full)
	errKindUsage   = 2 // the request is wrong for this host (no such program)
	errKindProto   = 3 // the request broke the protocol; the daemon closes
)

// errDaemonFrame is wrapped by every decoding error.
var errDaemonFrame = errors.New("launcher: malformed daemon frame")

// dmsg is one frame of the daemon protocol; which fields matter depends on
// op (see the constants).
type dmsg struct {
	op     dop
	job    string
	path   string
	dir    string
	argv   []string
	env    []string
	sha    []byte // nil, or shaLen bytes
	ranks  []rankReq
	rank   int
	pid    int
	code   int
	signal int
	stream int
	kind   int
	have   bool
	data   []byte
	text   string
}

// rankReq is one rank of a spawn request: its number and the variables
// that differ per rank.
type rankReq struct {
	rank int
	env  []string
}

// validJobID reports whether s can name a job: 1 to 32 lowercase hex
// digits, so that it is safe in a file name pattern.
func validJobID(s string) bool {
	if len(s) == 0 || len(s) > maxJobIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// encodeDFrame returns m as a complete frame, length prefix included. It
// refuses messages over the protocol's limits.
func encodeDFrame(m *dmsg) ([]byte, error) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0})
	e := msgpack.NewEncoder(&buf)
	var err error
	strs := func(ss []string, max int) error {
		if len(ss) > max {
			return fmt.Errorf("%d strings exceed %d", len(ss), max)
		}
		errs := []error{e.EncodeArrayLen(len(ss))}
		for _, s := range ss {
			if len(s) > maxArgLen {
				return fmt.Errorf("string of %d bytes exceeds %d", len(s), maxArgLen)
			}
			errs = append(errs, e.EncodeString(s))
		}
		return errors.Join(errs...)
	}
	switch m.op {
	case dopSpawn:
		if !validJobID(m.job) || len(m.path) > maxPathLen || len(m.dir) > maxPathLen ||
			(m.sha != nil && len(m.sha) != shaLen) || len(m.ranks) > maxHostRanks {
			return nil, fmt.Errorf("launcher: spawn request over the protocol's limits")
		}
		err = errors.Join(e.EncodeArrayLen(8), e.EncodeUint(uint64(m.op)), e.EncodeString(m.job),
			e.EncodeString(m.path), e.EncodeString(m.dir), strs(m.argv, maxArgs), strs(m.env, maxArgs),
			e.EncodeBytes(m.sha), e.EncodeArrayLen(len(m.ranks)))
		for _, r := range m.ranks {
			if err == nil {
				err = errors.Join(e.EncodeArrayLen(2), e.EncodeInt(int64(r.rank)), strs(r.env, maxRankEnv))
			}
		}
	case dopSignal:
		err = errors.Join(e.EncodeArrayLen(3), e.EncodeUint(uint64(m.op)), e.EncodeInt(int64(m.rank)), e.EncodeInt(int64(m.signal)))
	case dopEnd, dopPing, dopEnded:
		err = errors.Join(e.EncodeArrayLen(1), e.EncodeUint(uint64(m.op)))
	case dopExeQuery, dopExeDone:
		if len(m.sha) != shaLen {
			return nil, fmt.Errorf("launcher: executable hash of %d bytes", len(m.sha))
		}
		err = errors.Join(e.EncodeArrayLen(2), e.EncodeUint(uint64(m.op)), e.EncodeBytes(m.sha))
	case dopExeChunk:
		if len(m.data) > maxExeChunk {
			return nil, fmt.Errorf("launcher: executable chunk of %d bytes", len(m.data))
		}
		err = errors.Join(e.EncodeArrayLen(2), e.EncodeUint(uint64(m.op)), e.EncodeBytes(m.data))
	case dopHello:
		if len(m.text) > maxTextLen {
			return nil, fmt.Errorf("launcher: hostname of %d bytes", len(m.text))
		}
		err = errors.Join(e.EncodeArrayLen(2), e.EncodeUint(uint64(m.op)), e.EncodeString(m.text))
	case dopStarted:
		err = errors.Join(e.EncodeArrayLen(3), e.EncodeUint(uint64(m.op)), e.EncodeInt(int64(m.rank)), e.EncodeInt(int64(m.pid)))
	case dopOutput:
		if len(m.data) > maxOutputChunk {
			return nil, fmt.Errorf("launcher: output chunk of %d bytes", len(m.data))
		}
		err = errors.Join(e.EncodeArrayLen(4), e.EncodeUint(uint64(m.op)), e.EncodeInt(int64(m.rank)),
			e.EncodeInt(int64(m.stream)), e.EncodeBytes(m.data))
	case dopExit:
		err = errors.Join(e.EncodeArrayLen(4), e.EncodeUint(uint64(m.op)), e.EncodeInt(int64(m.rank)),
			e.EncodeInt(int64(m.code)), e.EncodeInt(int64(m.signal)))
	case dopError:
		err = errors.Join(e.EncodeArrayLen(3), e.EncodeUint(uint64(m.op)), e.EncodeInt(int64(m.kind)),
			e.EncodeString(truncate(m.text, maxTextLen)))
	case dopExeStatus:
		err = errors.Join(e.EncodeArrayLen(2), e.EncodeUint(uint64(m.op)), e.EncodeBool(m.have))
	default:
		return nil, fmt.Errorf("launcher: encode daemon frame: unknown op %d", m.op)
	}
	if err != nil {
		return nil, fmt.Errorf("launcher: encode daemon frame: %w", err)
	}
	b := buf.Bytes()
	if len(b)-4 > maxDaemonFrame {
		return nil, fmt.Errorf("launcher: daemon frame of %d bytes exceeds %d", len(b)-4, maxDaemonFrame)
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// truncate shortens s to at most n bytes without splitting a UTF-8
// sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// readDFrame reads one frame from r and decodes it, allocating the body
// only after checking its length.
func readDFrame(r io.Reader) (dmsg, error) {
	body, err := frame.Read(r, maxDaemonFrame)
	if errors.Is(err, frame.ErrLength) {
		return dmsg{}, fmt.Errorf("%w: %w", errDaemonFrame, err)
	}
	if err != nil {
		return dmsg{}, err
	}
	return decodeDBody(body)
}

// ddec is a msgpack decoder over one frame body with a sticky error.
type ddec struct {
	d   *msgpack.Decoder
	rd  *bytes.Reader
	err error
}

func (f *ddec) fail(what string, err error) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: %s: %w", errDaemonFrame, what, err)
	}
}

// int reads an integer in [lo, hi].
func (f *ddec) int(what string, lo, hi int64) int {
	if f.err != nil {
		return 0
	}
	v, err := f.d.DecodeInt64()
	if err == nil && (v < lo || v > hi) {
		err = fmt.Errorf("%d outside [%d, %d]", v, lo, hi)
	}
	if err != nil {
		f.fail(what, err)
		return 0
	}
	return int(v)
}

// bytes reads a str, bin or nil of at most limit bytes; nil gives nil.
func (f *ddec) bytes(what string, limit int) []byte {
	if f.err != nil {
		return nil
	}
	n, err := f.d.DecodeBytesLen()
	switch {
	case err != nil:
	case n < 0:
		return nil
	case n > limit:
		err = fmt.Errorf("length %d exceeds %d", n, limit)
	case n > f.rd.Len():
		err = fmt.Errorf("length %d exceeds the %d bytes left", n, f.rd.Len())
	}
	if err != nil {
		f.fail(what, err)
		return nil
	}
	b := make([]byte, n)
	if err := f.d.ReadFull(b); err != nil {
		f.fail(what, err)
		return nil
	}
	return b
}

func (f *ddec) str(what string, limit int) string { return string(f.bytes(what, limit)) }

// arrayLen reads an array header of at most max elements; each element
// takes at least one byte, so the count is also bounded by the body.
func (f *ddec) arrayLen(what string, max int) int {
	if f.err != nil {
		return 0
	}
	n, err := f.d.DecodeArrayLen()
	switch {
	case err != nil:
	case n < 0:
		return 0
	case n > max:
		err = fmt.Errorf("%d elements exceed %d", n, max)
	case n > f.rd.Len():
		err = fmt.Errorf("%d elements exceed the %d bytes left", n, f.rd.Len())
	}
	if err != nil {
		f.fail(what, err)
		return 0
	}
	return n
}

// strs reads an array of at most max strings.
func (f *ddec) strs(what string, max int) []string {
	n := f.arrayLen(what, max)
	if n == 0 {
		return nil
	}
	ss := make([]string, 0, n)
	for range n {
		ss = append(ss, f.str(what, maxArgLen))
	}
	return ss
}

// wantLen checks the element count of the body's array.
func (f *ddec) wantLen(n, want int) {
	if f.err == nil && n != want {
		f.err = fmt.Errorf("%w: %d elements, want %d", errDaemonFrame, n, want)
	}
}

// decodeDBody decodes one frame body. It never recurses and allocates no
// more than the body's length (times a small constant for slice headers).
func decodeDBody(body []byte) (dmsg, error) {
	var m dmsg
	rd := bytes.NewReader(body)
	f := &ddec{d: msgpack.NewDecoder(rd), rd: rd}
	n := f.arrayLen("frame", 8)
	if f.err == nil && n < 1 {
		f.err = fmt.Errorf("%w: empty array", errDaemonFrame)
	}
	m.op = dop(f.int("op", 0, math.MaxUint8))
	if f.err != nil {
		return m, f.err
	}
	switch m.op {
	case dopSpawn:
		f.wantLen(n, 8)
		m.job = f.str("job", maxJobIDLen)
		if f.err == nil && !validJobID(m.job) {
			f.err = fmt.Errorf("%w: job id %q is not 1-%d hex digits", errDaemonFrame, m.job, maxJobIDLen)
		}
		m.path = f.str("path", maxPathLen)
		m.dir = f.str("dir", maxPathLen)
		m.argv = f.strs("argv", maxArgs)
		m.env = f.strs("env", maxArgs)
		m.sha = f.bytes("sha", shaLen)
		if f.err == nil && m.sha != nil && len(m.sha) != shaLen {
			f.err = fmt.Errorf("%w: hash of %d bytes", errDaemonFrame, len(m.sha))
		}
		nr := f.arrayLen("ranks", maxHostRanks)
		for range nr {
			f.wantLen(f.arrayLen("rank", 2), 2)
			r := rankReq{rank: f.int("rank", 0, maxRank-1), env: f.strs("rank env", maxRankEnv)}
			if f.err != nil {
				break
			}
			m.ranks = append(m.ranks, r)
		}
	case dopSignal:
		f.wantLen(n, 3)
		m.rank = f.int("rank", 0, maxRank-1)
		m.signal = f.int("signal", 1, 64)
	case dopEnd, dopPing, dopEnded:
		f.wantLen(n, 1)
	case dopExeQuery, dopExeDone:
		f.wantLen(n, 2)
		m.sha = f.bytes("sha", shaLen)
		if f.err == nil && len(m.sha) != shaLen {
			f.err = fmt.Errorf("%w: hash of %d bytes", errDaemonFrame, len(m.sha))
		}
	case dopExeChunk:
		f.wantLen(n, 2)
		m.data = f.bytes("data", maxExeChunk)
	case dopHello:
		f.wantLen(n, 2)
		m.text = f.str("hostname", maxTextLen)
	case dopStarted:
		f.wantLen(n, 3)
		m.rank = f.int("rank", 0, maxRank-1)
		m.pid = f.int("pid", 1, math.MaxInt32)
	case dopOutput:
		f.wantLen(n, 4)
		m.rank = f.int("rank", 0, maxRank-1)
		m.stream = f.int("stream", streamStdout, streamStderr)
		m.data = f.bytes("data", maxOutputChunk)
	case dopExit:
		f.wantLen(n, 4)
		m.rank = f.int("rank", 0, maxRank-1)
		m.code = f.int("code", 0, 255)
		m.signal = f.int("signal", 0, 64)
	case dopError:
		f.wantLen(n, 3)
		m.kind = f.int("kind", errKindFailure, errKindProto)
		m.text = f.str("text", maxTextLen)
	case dopExeStatus:
		f.wantLen(n, 2)
		if f.err == nil {
			var err error
			if m.have, err = f.d.DecodeBool(); err != nil {
				f.fail("have", err)
			}
		}
	default:
		return m, fmt.Errorf("%w: unknown op %d", errDaemonFrame, m.op)
	}
	if f.err != nil {
		return m, f.err
	}
	if rd.Len() != 0 {
		return m, fmt.Errorf("%w: %d trailing bytes", errDaemonFrame, rd.Len())
	}
	return m, nil
}
