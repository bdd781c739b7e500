// Package auth implements the mutual challenge–response that every gorun
// connection runs before anything else: the rendezvous, rank-to-rank TCP
// connections and (later) daemons.
//
// Both sides hold the same secret key. Each sends a fresh 32-byte nonce and
// proves the key with HMAC-SHA256 over both nonces, a role and a label that
// names the protocol, so no secret crosses the wire, a recorded exchange
// cannot be replayed (the other side's nonce is new each time) and a proof
// made for one protocol is useless for another. Proofs are compared in
// constant time.
//
// The exchange, after which the connection belongs to the caller again:
//
//	server → client: "GRNAUTH1" | server nonce (32)
//	client → server: "GRNAUTH1" | client nonce (32) | HMAC(key, "client", label, sn, cn)
//	server → client: 0x00 | HMAC(key, "server", label, cn, sn)   (accepted)
//	                 0x01                                          (rejected, then close)
//
// The caller sets deadlines on the connection; these functions only read and
// write exactly the bytes above.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

const (
	magic     = "GRNAUTH1"
	nonceSize = 32
	macSize   = sha256.Size
)

var (
	// ErrDenied is returned by Server when the client's proof is wrong, and by
	// Client when the server's proof is wrong.
	ErrDenied = errors.New("auth: peer did not prove the shared secret")
	// ErrRejected is returned by Client when the server refused its proof:
	// the two sides hold different secrets.
	ErrRejected = errors.New("auth: peer rejected our proof (the secrets or job tokens differ)")
	// ErrProtocol is returned when the peer does not speak this exchange.
	ErrProtocol = errors.New("auth: peer does not speak the gorun handshake")
	// ErrNoKey is returned for an empty key.
	ErrNoKey = errors.New("auth: empty secret")
)

// NewKey returns n random bytes for use as a secret or job token.
func NewKey(n int) ([]byte, error) {
	k := make([]byte, n)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("auth: random key: %w", err)
	}
	return k, nil
}

func proof(key []byte, role, label string, first, second []byte) []byte {
	m := hmac.New(sha256.New, key)
	// Length-prefix the variable fields so no two inputs collide.
	fmt.Fprintf(m, "%d:%s|%d:%s|", len(role), role, len(label), label)
	m.Write(first)
	m.Write(second)
	return m.Sum(nil)
}

// Server runs the server side of the exchange on rw. It returns nil when the
// client proved key; ErrDenied (after telling the client) when it did not.
func Server(rw io.ReadWriter, key []byte, label string) error {
	if len(key) == 0 {
		return ErrNoKey
	}
	sn := make([]byte, nonceSize)
	if _, err := rand.Read(sn); err != nil {
		return fmt.Errorf("auth: nonce: %w", err)
	}
	if _, err := rw.Write(append([]byte(magic), sn...)); err != nil {
		return fmt.Errorf("auth: send challenge: %w", err)
	}
	in := make([]byte, len(magic)+nonceSize+macSize)
	if _, err := io.ReadFull(rw, in); err != nil {
		return fmt.Errorf("auth: read response: %w", err)
	}
	if string(in[:len(magic)]) != magic {
		return ErrProtocol
	}
	cn := in[len(magic) : len(magic)+nonceSize]
	got := in[len(magic)+nonceSize:]
	if !hmac.Equal(got, proof(key, "client", label, sn, cn)) {
		// Best effort: the client learns it was refused rather than seeing EOF.
		_, _ = rw.Write([]byte{1})
		return ErrDenied
	}
	if _, err := rw.Write(append([]byte{0}, proof(key, "server", label, cn, sn)...)); err != nil {
		return fmt.Errorf("auth: send proof: %w", err)
	}
	return nil
}

// Client runs the client side of the exchange on rw. It returns nil when both
// sides proved key, ErrRejected when the server refused our proof, and
// ErrDenied when the server's own proof is wrong.
func Client(rw io.ReadWriter, key []byte, label string) error {
	if len(key) == 0 {
		return ErrNoKey
	}
	in := make([]byte, len(magic)+nonceSize)
	if _, err := io.ReadFull(rw, in); err != nil {
		return fmt.Errorf("auth: read challenge: %w", err)
	}
	if string(in[:len(magic)]) != magic {
		return ErrProtocol
	}
	sn := in[len(magic):]
	cn := make([]byte, nonceSize)
	if _, err := rand.Read(cn); err != nil {
		return fmt.Errorf("auth: nonce: %w", err)
	}
	out := append([]byte(magic), cn...)
	out = append(out, proof(key, "client", label, sn, cn)...)
	if _, err := rw.Write(out); err != nil {
		return fmt.Errorf("auth: send response: %w", err)
	}
	var status [1]byte
	if _, err := io.ReadFull(rw, status[:]); err != nil {
		return fmt.Errorf("auth: read verdict: %w", err)
	}
	if status[0] == 1 {
		return ErrRejected
	}
	if status[0] != 0 {
		return ErrProtocol
	}
	got := make([]byte, macSize)
	if _, err := io.ReadFull(rw, got); err != nil {
		return fmt.Errorf("auth: read proof: %w", err)
	}
	if !hmac.Equal(got, proof(key, "server", label, cn, sn)) {
		return ErrDenied
	}
	return nil
}
