package main

import (
	"fmt"
	"io"
	"time"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

const tagRing = 1

// ring passes a message of size bytes around all ranks, laps times after
// laps/10+1 warm-up laps, as ring.c does: rank r receives from r-1 and sends
// to r+1. Rank 0 prints the time per hop (one hand-off between neighbours).
// With more ranks than cores this shows how a waiting rank gives up its CPU.
func ring(c *mpi.Comm, laps, bytes int, out io.Writer) error {
	rank, size := c.Rank(), c.Size()
	next, prev := (rank+1)%size, (rank+size-1)%size
	// In cache lines of its own (a 128-byte size class is 128-aligned): a
	// small slice shares its line with whatever the runtime allocated
	// next to it, and a write there by another thread would take the line
	// away from this loop. C's malloc has no such neighbours at work.
	buf := make([]byte, bytes, max(bytes, 128))
	warm := laps/10 + 1
	var t0 time.Time
	for i := range warm + laps {
		if i == warm {
			if err := barrier(c); err != nil {
				return err
			}
			t0 = time.Now()
		}
		if rank == 0 {
			if err := mpi.Send(c, buf, next, tagRing); err != nil {
				return err
			}
			if _, err := mpi.Recv(c, buf, prev, tagRing); err != nil {
				return err
			}
		} else {
			if _, err := mpi.Recv(c, buf, prev, tagRing); err != nil {
				return err
			}
			if err := mpi.Send(c, buf, next, tagRing); err != nil {
				return err
			}
		}
	}
	el := time.Since(t0)
	if rank == 0 {
		perHop := el.Seconds() / float64(laps*size) * 1e6
		fmt.Fprintf(out, "ring n=%d bytes=%d laps=%d us_per_hop=%.3f\n", size, bytes, laps, perHop)
	}
	return nil
}
