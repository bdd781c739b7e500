package rendezvous

import (
	"errors"
	"fmt"
)

// EventKind says what an [Event] reports.
type EventKind uint8

// Kinds of events.
const (
	// EventRankFailed: Rank failed (exited non-zero, was signalled or was
	// lost); Code is its exit code if any and Text says how.
	EventRankFailed EventKind = 1
	// EventAbort: the job is being aborted (Rank called Abort, or a
	// timeout, or Ctrl-C); Code is the exit code asked for and Text says why.
	EventAbort EventKind = 2
	// EventLost is generated on the client side only: the connection to the
	// server broke unexpectedly. Rank is -1 and Text gives the error.
	EventLost EventKind = 3
)

// String returns a short name of k.
func (k EventKind) String() string {
	switch k {
	case EventRankFailed:
		return "rank-failed"
	case EventAbort:
		return "abort"
	case EventLost:
		return "lost"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is a notification from the launcher to the ranks (see
// [Server.Notify] and [ClientConfig.OnEvent]).
type Event struct {
	Kind EventKind
	Rank int    // the rank concerned, or -1
	Code int    // exit code, where it applies
	Text string // human-readable detail, at most MaxTextLen bytes
}

// Errors returned by this package; test with errors.Is.
var (
	// ErrRejected is wrapped by every error of Dial whose cause is the
	// server refusing the connection. A wrong job token additionally wraps
	// auth.ErrRejected.
	ErrRejected = errors.New("rendezvous: connection rejected")
	// ErrBadRank: the rank is outside [0, Size) of the job. Wraps ErrRejected.
	ErrBadRank = fmt.Errorf("%w: rank outside the job", ErrRejected)
	// ErrRankTaken: another connection already holds the rank. Wraps ErrRejected.
	ErrRankTaken = fmt.Errorf("%w: rank already connected", ErrRejected)
	// ErrClosed is returned by the methods of a Client after Close.
	ErrClosed = errors.New("rendezvous: client closed")
	// ErrLost is returned by the methods of a Client once its connection to
	// the server has broken, and by requests that were outstanding then.
	ErrLost = errors.New("rendezvous: connection to the server lost")
	// ErrRefused: the server answered the request with an error (store
	// full, too many outstanding requests, malformed request).
	ErrRefused = errors.New("rendezvous: request refused by the server")
	// ErrInvalid: an argument violates the protocol's limits (empty or long
	// key, long value).
	ErrInvalid = errors.New("rendezvous: invalid argument")
)
