package launcher

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrUsage is wrapped by every error that blames the caller's input rather
// than the system: an invalid [Config], a PROGRAM that does not exist or is
// not executable or not a program (a Go package that is not package main, a
// script or executable whose interpreter or loader is missing), a malformed
// -x entry, a missing working directory. No rank is left running when Run returns such an error. The
// gorun command exits with status 2 for it.
var ErrUsage = errors.New("launcher: usage error")

// usageError is an error wrapping ErrUsage and, if set, its cause.
type usageError struct {
	msg string
	err error
}

func (e *usageError) Error() string { return "launcher: " + e.msg }

func (e *usageError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrUsage}
	}
	return []error{ErrUsage, e.err}
}

// usageErrorf returns an error wrapping ErrUsage and cause (which may be
// nil) whose message is "launcher: " and the formatted text.
func usageErrorf(cause error, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), err: cause}
}

// Interrupt is a cancellation cause for the context given to [Run] (see
// context.WithCancelCause) saying that the job was interrupted by Signal.
// Run then stops the job and returns 128+Signal. A context cancelled with
// any other cause is treated as SIGINT.
type Interrupt struct {
	Signal syscall.Signal
}

// Error returns a description such as "launcher: interrupted by interrupt".
func (i Interrupt) Error() string {
	return "launcher: interrupted by " + i.Signal.String()
}
