package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestRead(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []byte
		err  error
	}{
		{"ok", []byte{3, 0, 0, 0, 'a', 'b', 'c'}, []byte("abc"), nil},
		{"empty stream", nil, nil, io.EOF},
		{"zero length", []byte{0, 0, 0, 0}, nil, ErrLength},
		{"over the cap", []byte{9, 0, 0, 0}, nil, ErrLength},
		{"huge claim, no bytes", []byte{0xff, 0xff, 0xff, 0xff}, nil, ErrLength},
		{"cut short", []byte{3, 0, 0, 0, 'a'}, nil, io.ErrUnexpectedEOF},
		{"cut in the header", []byte{3, 0}, nil, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		got, err := Read(bytes.NewReader(tc.in), 8)
		if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: Read = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, in []byte) {
		body, err := Read(bytes.NewReader(in), 64)
		if err == nil && (len(body) == 0 || len(body) > 64 || len(in) < 4+len(body)) {
			t.Fatalf("accepted a %d-byte body from %d bytes", len(body), len(in))
		}
	})
}
