package auth

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// run performs one exchange over a pipe and returns both sides' errors.
func run(t *testing.T, skey, ckey []byte, slabel, clabel string) (serr, cerr error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() { // exits when Server returns; joined below
		err := Server(a, skey, slabel)
		a.Close() // unblock a client still reading after a refusal
		done <- err
	}()
	cerr = Client(b, ckey, clabel)
	b.Close()
	return <-done, cerr
}

func TestExchange(t *testing.T) {
	k := []byte("secret-1")
	tests := []struct {
		name           string
		skey, ckey     []byte
		slabel, clabel string
		wantS, wantC   error
	}{
		{"same key", k, k, "rdv", "rdv", nil, nil},
		{"wrong key", k, []byte("secret-2"), "rdv", "rdv", ErrDenied, ErrRejected},
		{"other label", k, k, "rdv", "tcp", ErrDenied, ErrRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			serr, cerr := run(t, tc.skey, tc.ckey, tc.slabel, tc.clabel)
			if !errors.Is(serr, tc.wantS) || (tc.wantS == nil && serr != nil) {
				t.Errorf("server: got %v, want %v", serr, tc.wantS)
			}
			if !errors.Is(cerr, tc.wantC) || (tc.wantC == nil && cerr != nil) {
				t.Errorf("client: got %v, want %v", cerr, tc.wantC)
			}
		})
	}
}

// recorder captures what a client writes so it can be replayed.
type recorder struct {
	io.ReadWriter
	wrote bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote.Write(p)
	return r.ReadWriter.Write(p)
}

func TestReplayFails(t *testing.T) {
	k := []byte("k")
	a, b := net.Pipe()
	go func() { _ = Server(a, k, "x"); a.Close() }()
	rec := &recorder{ReadWriter: b}
	if err := Client(rec, k, "x"); err != nil {
		t.Fatalf("first exchange: %v", err)
	}
	b.Close()
	recorded := rec.wrote.Bytes()

	// Replay the recorded client bytes against a new server: its nonce is new.
	c, d := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Server(c, k, "x"); c.Close() }()
	challenge := make([]byte, len(magic)+nonceSize)
	if _, err := io.ReadFull(d, challenge); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(recorded); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, d) // drain the refusal byte
	if err := <-done; !errors.Is(err, ErrDenied) {
		t.Fatalf("replayed exchange: server got %v, want ErrDenied", err)
	}
	d.Close()
}

func TestGarbage(t *testing.T) {
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Server(a, []byte("k"), "x"); a.Close() }()
	go func() { _, _ = io.Copy(io.Discard, b) }()
	_, _ = b.Write(bytes.Repeat([]byte{'G'}, len(magic)+nonceSize+macSize))
	if err := <-done; !errors.Is(err, ErrProtocol) {
		t.Fatalf("garbage: got %v, want ErrProtocol", err)
	}
	b.Close()
}

func TestEmptyKey(t *testing.T) {
	if err := Server(nil, nil, "x"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("got %v", err)
	}
	if err := Client(nil, nil, "x"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("got %v", err)
	}
}

// FuzzServer feeds arbitrary client bytes to Server: it must never succeed
// without the key and never panic.
func FuzzServer(f *testing.F) {
	f.Add([]byte(magic + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		rw := &struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), io.Discard}
		if err := Server(rw, []byte("key"), "fuzz"); err == nil {
			t.Fatalf("server accepted %x", in)
		}
	})
}
