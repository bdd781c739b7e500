package mpi

import (
	"github.com/gorun-hpc/gorun/runtime/internal/sched"
	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/shm"
)

// directMax is the largest receive buffer for which Sendrecv sends before
// it receives, so that the receive may take the direct path.
const directMax = 4 << 10

// shmRoute returns the shared-memory endpoint that reaches rank src of c
// (any int), or nil when src is not a rank on this host.
func (c *Comm) shmRoute(src int) *shm.Endpoint {
	if c.w.shmRoutes == nil || uint(src) >= uint(c.size) {
		return nil
	}
	return c.w.shmRoutes[c.toWorld(src)]
}

// recvDirect is the direct path of a blocking typed receive from one rank
// on this host: it waits for that rank's next frame in shared memory and
// copies it straight into b (shm.Endpoint.Take: from the ring, or below
// 128 KiB from the sender's memory), with no request, no match queue and
// no engine lock. It applies only while the engine is
// quiet (nothing posted, probed or held unexpected), so it matches exactly
// what a posted receive would have matched; anything else, an error
// included, is left to the general path, which reports it.
//
// took reports that the message landed in b and *st holds its status. If
// not, spun reports that the waiting policy's spinning is used up (the
// caller posts a request and parks at once); otherwise the caller takes the
// general path from the start.
func (c *Comm) recvDirect(st *Status, b []byte, typ uint8, src, tag int) (took, spun bool) {
	w := c.w
	ep := c.shmRoute(src)
	if ep == nil || uint(tag+1) > MaxTag+1 || w.eng.trouble.Load() || c.usable() != nil {
		return false, false
	}
	ws := c.toWorld(src)
	var h transport.Header
	sp := sched.Spinner{Yield: w.oversubscribed}
	spin := func() (more, yield bool) {
		// Let the other transports progress too, and stop for trouble:
		// the general path reports it.
		for _, p := range w.netPollers {
			p.Poll()
		}
		ok, _ := sp.Looked(shm.SpinEvery)
		return ok && !w.eng.trouble.Load(), sp.Yield
	}
	switch ep.Take(int(ws), c.ctx, int32(tag), typ, b, &h, spin) {
	case shm.Took:
		st.fill(c, &h)
		if tookDirect != nil {
			tookDirect()
		}
		return true, false
	case shm.TakeEmpty:
		return false, true
	}
	return false, false
}

// tookDirect, when set (by tests, before any rank starts), is called after
// each receive that recvDirect completed.
var tookDirect func()
