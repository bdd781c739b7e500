package mpi

import (
	"errors"
	"fmt"
)

// Sentinel errors. Operations return them wrapped in an *Error; test with
// errors.Is.
var (
	// ErrTruncate means the receive buffer is shorter than the message. The
	// message is consumed; the *Error names both sizes.
	ErrTruncate = errors.New("mpi: message truncated: receive buffer too small")
	// ErrType means the message's element type differs from the receive
	// buffer's (e.g. []float64 sent, []int32 posted). The message is consumed.
	ErrType = errors.New("mpi: element type mismatch")
	// ErrRank means a rank argument is outside [0, Size) (and not a wildcard
	// or ProcNull where those are allowed).
	ErrRank = errors.New("mpi: invalid rank")
	// ErrTag means a tag is negative or above MaxTag (AnyTag is allowed only
	// when receiving or probing).
	ErrTag = errors.New("mpi: invalid tag")
	// ErrFinalized means the operation was called after Finalize.
	ErrFinalized = errors.New("mpi: called after Finalize")
	// ErrAborted means the job is ending: a rank called Abort, a rank failed,
	// the launcher stopped the job, or it timed out.
	ErrAborted = errors.New("mpi: job aborted")
	// ErrPeerLost means the peer the operation waits on has died or its
	// connection broke.
	ErrPeerLost = errors.New("mpi: peer lost")
	// ErrCount means a buffer length or count argument is invalid.
	ErrCount = errors.New("mpi: invalid count")
	// ErrNotLaunched is returned by Init when the environment names a
	// launcher that cannot be reached or is incomplete.
	ErrNotLaunched = errors.New("mpi: launcher environment incomplete")
)

// Error describes a failed operation: which operation, on which rank, with
// which peer and tag, and why. Err is one of the sentinels above or an error
// from a transport, wrapped with detail.
type Error struct {
	Op   string // "send", "recv", "ssend", "probe", "init", ...
	Rank int    // the calling rank in the communicator used
	Peer int    // the other rank (AnySource, ProcNull, or -2 for none)
	Tag  int    // the tag (AnyTag, or -2 for none)
	Err  error
}

const none = -2

func (e *Error) Error() string {
	s := "mpi: " + e.Op
	switch {
	case e.Peer == none:
	case e.Op == "recv" || e.Op == "irecv" || e.Op == "probe" || e.Op == "iprobe":
		s += fmt.Sprintf(" %s→%d", rankName(e.Peer), e.Rank)
	default:
		s += fmt.Sprintf(" %d→%s", e.Rank, rankName(e.Peer))
	}
	if e.Tag != none {
		if e.Tag == AnyTag {
			s += " tag any"
		} else {
			s += fmt.Sprintf(" tag %d", e.Tag)
		}
	}
	if e.Err != nil {
		s += ": " + trimPrefix(e.Err.Error())
	}
	return s
}

// trimPrefix drops a leading "mpi: " so wrapped sentinels do not stutter.
func trimPrefix(s string) string {
	if len(s) > 5 && s[:5] == "mpi: " {
		return s[5:]
	}
	return s
}

func rankName(r int) string {
	switch r {
	case AnySource:
		return "any"
	case ProcNull:
		return "null"
	}
	return fmt.Sprint(r)
}

func (e *Error) Unwrap() error { return e.Err }
