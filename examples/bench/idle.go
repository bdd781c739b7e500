package main

import (
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

const (
	tagIdle   = 1
	tagReport = 2
)

// cpuTime returns the user+system CPU time this process has used so far.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// idle measures what a rank blocked in Recv costs, as idle.c does: after a
// barrier, rank 0 sleeps secs seconds and then sends; rank 1 waits for that
// message in Recv and measures the wall time and the CPU time its process
// used meanwhile. Rank 1 sends both to rank 0, which prints them in idle.c's
// format. Other ranks only join the barrier.
func idle(c *mpi.Comm, secs float64, out io.Writer) error {
	if err := barrier(c); err != nil {
		return err
	}
	x := []int32{0}
	switch c.Rank() {
	case 0:
		time.Sleep(time.Duration(secs * float64(time.Second)))
		if err := mpi.Send(c, x, 1, tagIdle); err != nil {
			return err
		}
		res := make([]float64, 2)
		if _, err := mpi.Recv(c, res, 1, tagReport); err != nil {
			return err
		}
		fmt.Fprintf(out, "idle wait %.2f s wall, %.2f s cpu\n", res[0], res[1])
	case 1:
		c0, err := cpuTime()
		if err != nil {
			return err
		}
		w0 := time.Now()
		if _, err := mpi.Recv(c, x, 0, tagIdle); err != nil {
			return err
		}
		wall := time.Since(w0)
		c1, err := cpuTime()
		if err != nil {
			return err
		}
		return mpi.Send(c, []float64{wall.Seconds(), (c1 - c0).Seconds()}, 0, tagReport)
	}
	return nil
}
