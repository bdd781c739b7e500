// Package frame reads the length-prefixed frames of gorun's control
// protocols (the rendezvous and the daemon): a 4-byte little-endian length
// followed by that many bytes of body.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrLength is returned for a frame whose length is zero or above the cap.
var ErrLength = errors.New("frame: bad length")

// Read reads one frame from r and returns its body, which the caller owns.
// It checks the length against max before allocating, since r carries bytes
// from the network. A frame cut short returns io.ErrUnexpectedEOF; a clean
// end before the frame returns io.EOF.
func Read(r io.Reader, max uint32) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 || n > max {
		return nil, fmt.Errorf("%w: %d outside [1, %d]", ErrLength, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}
