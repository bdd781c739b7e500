// Package sched holds gorun's waiting policy for the spinning part of a
// wait (Spinner) and the primitive it spins with: Yield, which gives the
// core to other processes without going through the Go scheduler.
package sched
