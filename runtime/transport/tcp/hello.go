package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// After authentication the dialer introduces itself with a hello and the
// acceptor answers with a one-byte verdict:
//
//	dialer → acceptor: "GRNHELO1" | src rank u32 LE | dst rank u32 LE   (16 bytes)
//	acceptor → dialer: 0x00 (accepted), or, followed by a close,
//	                   0x01 (I am not rank dst) or
//	                   0x02 (I am dialing you: wait for my connection)
//
// The verdict lets the dialer report a wrong address (a stale rendezvous
// entry, say) at dial time instead of as a vanished peer later. Verdict
// 0x02 keeps one connection per pair of ranks when both dial at once: the
// lower rank's wins.
const (
	helloMagic = "GRNHELO1"
	helloSize  = len(helloMagic) + 8

	verdictOK        byte = 0
	verdictWrongRank byte = 1
	verdictRetry     byte = 2
)

var errBadHello = errors.New("tcp: bad hello")

// appendHello appends the hello of a dialer of rank src that wants rank dst.
// Both ranks are in [0, math.MaxInt32].
func appendHello(b []byte, src, dst int) []byte {
	b = append(b, helloMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(src))
	return binary.LittleEndian.AppendUint32(b, uint32(dst))
}

// parseHello decodes a hello from the first helloSize bytes of b. It reads
// bytes from the network and trusts nothing.
func parseHello(b []byte) (src, dst int, err error) {
	if len(b) < helloSize {
		return 0, 0, fmt.Errorf("%w: %d bytes, need %d", errBadHello, len(b), helloSize)
	}
	if string(b[:len(helloMagic)]) != helloMagic {
		return 0, 0, fmt.Errorf("%w: wrong magic %q", errBadHello, b[:len(helloMagic)])
	}
	s := binary.LittleEndian.Uint32(b[len(helloMagic):])
	d := binary.LittleEndian.Uint32(b[len(helloMagic)+4:])
	if s > math.MaxInt32 || d > math.MaxInt32 {
		return 0, 0, fmt.Errorf("%w: rank out of range (src %d, dst %d)", errBadHello, s, d)
	}
	return int(s), int(d), nil
}
