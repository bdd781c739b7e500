package rendezvous

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorun-hpc/gorun/runtime/auth"
)

func sampleMsgs() []msg {
	return []msg{
		{Op: opHello, Rank: 3},
		{Op: opSet, ID: 1, Key: "addr/0", Value: []byte("127.0.0.1:4000")},
		{Op: opSet, ID: 2, Key: "empty", Value: []byte{}},
		{Op: opGet, ID: 1 << 40, Key: "addr/1"},
		{Op: opFence, ID: 9},
		{Op: opCancel, ID: 9},
		{Op: opAbort, ID: 10, Code: -2, Text: "bad things"},
		{Op: opFinalize, ID: 11},
		{Op: opWelcome, Code: 8},
		{Op: opReject, Code: rejectBadRank, Text: "rank 9 is outside [0, 8)"},
		{Op: opReply, ID: 4, Value: bytes.Repeat([]byte{0xab}, MaxValueLen)},
		{Op: opEvent, Kind: uint8(EventRankFailed), Rank: 5, Code: 137, Text: "killed"},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	for _, m := range sampleMsgs() {
		f, err := encodeFrame(&m)
		if err != nil {
			t.Fatal(err)
		}
		stream.Write(f)
	}
	for _, want := range sampleMsgs() {
		got, err := readFrame(&stream)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	if _, err := readFrame(&stream); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

// body encodes the given values as a msgpack array, bypassing encodeFrame's checks.
func body(t testing.TB, vals ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	if err := e.EncodeArrayLen(len(vals)); err != nil {
		t.Fatal(err)
	}
	for _, v := range vals {
		if err := e.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func framed(b []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// strictReader fails the test if more than max bytes are read from it.
type strictReader struct {
	t   *testing.T
	r   io.Reader
	max int
}

func (s *strictReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if s.max -= n; s.max < 0 {
		s.t.Fatal("decoder read past the frame it rejected")
	}
	return n, err
}

func TestFrameRejects(t *testing.T) {
	good := func(key, val, text any) []byte { return body(t, 2, 1, 0, 0, 0, key, val, text) }
	cases := map[string][]byte{
		"empty frame":     {0, 0, 0, 0},
		"short header":    {1, 0},
		"truncated body":  {10, 0, 0, 0, 0x98},
		"not an array":    framed([]byte{0xc0}),
		"7 elements":      framed(body(t, 2, 1, 0, 0, 0, "k", nil)),
		"9 elements":      framed(body(t, 2, 1, 0, 0, 0, "k", nil, nil, nil)),
		"unknown op":      framed(body(t, 99, 1, 0, 0, 0, "k", nil, nil)),
		"op too big":      framed(body(t, 258, 1, 0, 0, 0, "k", nil, nil)),
		"negative op":     framed(body(t, -1, 1, 0, 0, 0, "k", nil, nil)),
		"rank > int32":    framed(body(t, 1, 0, int64(1)<<40, 0, 0, nil, nil, nil)),
		"kind > uint8":    framed(body(t, 19, 0, 0, 0, 300, nil, nil, nil)),
		"key too long":    framed(good(string(make([]byte, MaxKeyLen+1)), nil, nil)),
		"value too long":  framed(good("k", make([]byte, MaxValueLen+1), nil)),
		"text too long":   framed(good("k", nil, string(make([]byte, MaxTextLen+1)))),
		"key is a map":    framed(good(map[string]int{"a": 1}, nil, nil)),
		"value is nested": framed(good("k", []any{[]any{[]any{}}}, nil)),
		"trailing bytes":  framed(append(good("k", nil, nil), 0)),
		// A str32 header claiming 60 KiB with 3 bytes behind it.
		"lying length": framed(append(bytes.Clone(body(t, 2, 1, 0, 0, 0, "k", nil, nil)[:8]), 0xc6, 0, 0, 0xf0, 0, 1, 2, 3)),
	}
	for name, in := range cases {
		if _, err := readFrame(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "short header" && name != "truncated body" && !errors.Is(err, errFrame) {
			t.Errorf("%s: error %v does not wrap errFrame", name, err)
		}
	}
	// An over-long frame is refused from its header alone.
	over := binary.LittleEndian.AppendUint32(nil, maxFrameLen+1)
	r := &strictReader{t: t, r: io.MultiReader(bytes.NewReader(over), bytes.NewReader(make([]byte, 1<<21))), max: 4}
	if _, err := readFrame(r); !errors.Is(err, errFrame) {
		t.Fatalf("frame of %d bytes: %v", maxFrameLen+1, err)
	}
	// Encoding refuses what decoding would refuse.
	for _, m := range []msg{
		{Op: opSet, Key: string(make([]byte, MaxKeyLen+1))},
		{Op: opSet, Key: "k", Value: make([]byte, MaxValueLen+1)},
		{Op: opAbort, Text: string(make([]byte, MaxTextLen+1))},
		{Op: opAbort, Code: 1 << 40},
	} {
		if _, err := encodeFrame(&m); !errors.Is(err, ErrInvalid) {
			t.Errorf("encodeFrame(%d-byte key, %d-byte value, %d-byte text, code %d) = %v",
				len(m.Key), len(m.Value), len(m.Text), m.Code, err)
		}
	}
}

// TestDecodeAllocationBounded checks that a frame cannot make the decoder
// allocate much more than the frame's own size, whatever lengths it claims.
func TestDecodeAllocationBounded(t *testing.T) {
	prefix := body(t, 2, 1, 0, 0, 0, "k", nil, nil)[:8] // array header .. key
	inputs := [][]byte{
		framed(append(prefix[:len(prefix):len(prefix)], 0xc6, 0xff, 0xff, 0xff, 0xff)), // bin32 4 GiB
		framed(append(prefix[:len(prefix):len(prefix)], 0xc5, 0xff, 0xff)),             // bin16 64 KiB - 1, empty
		framed(append(prefix[:6:6], 0xdb, 0, 1, 0, 0)),                                 // str32 key 64 KiB
		framed(body(t, 2, 1, 0, 0, 0, "k", nil, nil)[:0]),
	}
	for i, in := range inputs {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			_, _ = readFrame(bytes.NewReader(in))
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > uint64(len(in))+4096 {
			t.Errorf("input %d (%d bytes): %d bytes allocated per decode", i, len(in), per)
		}
	}
}

func FuzzFrame(f *testing.F) {
	for _, m := range sampleMsgs() {
		fr, err := encodeFrame(&m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr)
		f.Add(fr[:len(fr)/2])
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(framed([]byte{0x98, 0xc6, 0xff, 0xff, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			before := r.Len()
			m, err := readFrame(r)
			if err != nil {
				return
			}
			if used := before - r.Len(); used > 4+maxFrameLen {
				t.Fatalf("consumed %d bytes for one frame", used)
			}
			if len(m.Key) > MaxKeyLen || len(m.Value) > MaxValueLen || len(m.Text) > MaxTextLen ||
				!m.Op.known() || !fitsInt32(int64(m.Rank)) || !fitsInt32(int64(m.Code)) {
				t.Fatalf("decoded a frame beyond the caps: %+v", m)
			}
			// Whatever decodes re-encodes, and decodes to the same message.
			fr, err := encodeFrame(&m)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", m, err)
			}
			m2, err := readFrame(bytes.NewReader(fr))
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("round trip: %+v -> %+v, %v", m, m2, err)
			}
		}
	})
}

// FuzzServerConn feeds arbitrary bytes to the server after a valid auth and
// hello: the server must neither panic nor hang, and Close must still join
// everything.
func FuzzServerConn(f *testing.F) {
	var seq []byte
	for _, m := range []msg{
		{Op: opSet, ID: 1, Key: "a", Value: []byte("1")},
		{Op: opGet, ID: 2, Key: "a"},
		{Op: opGet, ID: 3, Key: "b"},
		{Op: opCancel, ID: 3},
		{Op: opFence, ID: 4},
		{Op: opGet, ID: 5, Key: "c"},
		{Op: opAbort, ID: 6, Code: 1, Text: "x"},
		{Op: opFinalize, ID: 7},
		{Op: opHello, Rank: 1},
	} {
		fr, _ := encodeFrame(&m)
		seq = append(seq, fr...)
		f.Add(bytes.Clone(seq))
	}
	f.Add([]byte("\x00\x00\x00\x00garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := newServer(ServerConfig{Size: 1, Token: testToken,
			OnAbort: func(int, int, string) {}, OnFinalize: func(int) {}, OnDisconnect: func(int, error) {}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cli, srv := net.Pipe()
		defer cli.Close()
		s.serve(srv)
		if err := auth.Client(cli, testToken, AuthLabel); err != nil {
			t.Fatal(err)
		}
		hello, _ := encodeFrame(&msg{Op: opHello, Rank: 0})
		if _, err := cli.Write(hello); err != nil {
			t.Fatal(err)
		}
		if m, err := readFrame(cli); err != nil || m.Op != opWelcome {
			t.Fatalf("welcome: %+v, %v", m, err)
		}
		drained := make(chan struct{})
		go func() { // exits when cli is closed (below) or the server closes its end
			_, _ = io.Copy(io.Discard, cli)
			close(drained)
		}()
		_, _ = cli.Write(in) // returns once the server has read it all, or it hung up
		_ = s.Close()
		_ = cli.Close()
		<-drained
	})
}
