package collectives

import (
	"sync/atomic"

	"github.com/gorun-hpc/gorun/internal/commslot"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// commState is what this package keeps per communicator, in the
// communicator's own slot (internal/commslot): one pointer load per call,
// no global map, and it goes away with the communicator.
type commState struct {
	h   atomic.Pointer[hierarchy] // host layout (hierarchyOf), once built
	shm atomic.Pointer[shmColl]   // shared-memory region (shmOf), noShm for none
}

// stateOf returns c's state, creating it on first use.
func stateOf(c *mpi.Comm) *commState {
	slot := commslot.Of(c)
	if v := slot.Load(); v != nil {
		return (*v).(*commState)
	}
	var st any = &commState{}
	if slot.CompareAndSwap(nil, &st) {
		return st.(*commState)
	}
	return (*slot.Load()).(*commState)
}
