// Package commslot gives package collectives a slot of its own in every
// mpi.Comm, for the state it keeps per communicator (host layout,
// shared-memory region), without a public API on mpi.Comm and without a
// global map: one pointer load per call, and the state goes away with the
// communicator.
package commslot

import "sync/atomic"

// Of returns the slot of a communicator (an *mpi.Comm; the slot is shared
// with its Collective view). Package mpi sets it in its init, so it is set
// before any communicator exists.
var Of func(comm any) *atomic.Pointer[any]
