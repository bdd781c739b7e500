package transport

import (
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	hs := []Header{
		{Kind: KindData, Flags: FlagSync, Type: 14, Context: 7, Src: 3, Dst: 5, Tag: 1 << 30, Seq: 1<<64 - 1, Len: 1<<32 - 1},
		{Kind: KindAck, Src: 0, Dst: 1, Tag: 0, Seq: 42},
		{Kind: KindBye},
	}
	for _, h := range hs {
		b, err := h.AppendBinary(nil)
		if err != nil || len(b) != HeaderSize {
			t.Fatalf("AppendBinary(%+v) = %d bytes, %v; want %d bytes", h, len(b), err, HeaderSize)
		}
		got, err := ParseHeader(b)
		if err != nil {
			t.Fatalf("ParseHeader(%+v): %v", h, err)
		}
		if got != h {
			t.Errorf("round trip: got %+v; want %+v", got, h)
		}
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := Header{Kind: KindData, Src: 1, Dst: 2, Len: 8}
	enc := func(mut func(b []byte)) []byte {
		b, _ := good.AppendBinary(nil)
		mut(b)
		return b
	}
	cases := map[string][]byte{
		"short":         make([]byte, HeaderSize-1),
		"kind zero":     enc(func(b []byte) { b[0] = 0 }),
		"kind unknown":  enc(func(b []byte) { b[0] = 99 }),
		"reserved":      enc(func(b []byte) { b[3] = 1 }),
		"negative src":  enc(func(b []byte) { b[11] = 0x80 }),
		"negative dst":  enc(func(b []byte) { b[15] = 0x80 }),
		"ack with data": enc(func(b []byte) { b[0] = byte(KindAck) }),
	}
	for name, b := range cases {
		if _, err := ParseHeader(b); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: ParseHeader = %v; want ErrBadHeader", name, err)
		}
	}
}

// FuzzParseHeader checks that any accepted input re-encodes to the same bytes
// and that nothing panics.
func FuzzParseHeader(f *testing.F) {
	b, _ := Header{Kind: KindData, Src: 1, Dst: 2, Tag: 3, Len: 4}.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseHeader(in)
		if err != nil {
			return
		}
		out, _ := h.AppendBinary(nil)
		if string(out) != string(in[:HeaderSize]) {
			t.Fatalf("re-encoding %x gave %x", in[:HeaderSize], out)
		}
	})
}
