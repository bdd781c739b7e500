package main

import (
	"fmt"
	"io"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// The method, counts and output of coll.c, plus alltoall (not in coll.c; its
// C counterpart is c/alltoall.c next to this file).
const (
	collWarmup    = 3       // untimed calls before the calibration
	collMinIters  = 5       // bounds of the calibrated iteration count
	collMaxIters  = 1000000 //
	defaultTarget = 0.5     // seconds per test
)

var (
	allreduceCounts = []int{1, 16, 1024, 65536, 1 << 20} // doubles
	bcastBytes      = []int{8, 4096, 1 << 20}
	alltoallBytes   = []int{8, 4096, 65536} // per destination rank
)

// collOps lists, in the order coll runs them, the collective subcommands.
var collOps = []string{"allreduce", "bcast", "barrier", "alltoall"}

// collBufs holds the buffers of the collective tests, sized for the largest
// count, filled as coll.c fills them.
type collBufs struct {
	dsend, drecv []float64 // allreduce
	bbuf         []byte    // bcast
	asend, arecv []byte    // alltoall
}

func newCollBufs(c *mpi.Comm, ops []string) *collBufs {
	b := &collBufs{}
	rank := c.Rank()
	for _, op := range ops {
		switch op {
		case "allreduce":
			n := allreduceCounts[len(allreduceCounts)-1]
			b.dsend, b.drecv = make([]float64, n), make([]float64, n)
			for i := range b.dsend {
				b.dsend[i] = float64(rank) + float64(i)*1e-6
			}
		case "bcast":
			b.bbuf = make([]byte, bcastBytes[len(bcastBytes)-1])
			for i := range b.bbuf {
				b.bbuf[i] = byte(rank)
			}
		case "alltoall":
			n := alltoallBytes[len(alltoallBytes)-1] * c.Size()
			b.asend, b.arecv = make([]byte, n), make([]byte, n)
			for i := range b.asend {
				b.asend[i] = byte(rank)
			}
		}
	}
	return b
}

// call runs one collective op of n elements (doubles for allreduce, bytes
// otherwise; for alltoall, bytes per destination rank).
func (b *collBufs) call(c *mpi.Comm, op string, n int) error {
	switch op {
	case "allreduce":
		return collectives.Allreduce(c, b.dsend[:n], b.drecv[:n], collectives.Sum)
	case "bcast":
		return collectives.Bcast(c, b.bbuf[:n], 0)
	case "alltoall":
		m := n * c.Size()
		return collectives.Alltoall(c, b.asend[:m], b.arecv[:m])
	default:
		return collectives.Barrier(c)
	}
}

// coll runs the collective tests ops, in order, as coll.c does; rank 0 prints
// coll.c's header and one row per test:
//
//	op count bytes max_us mean_us iters
func coll(c *mpi.Comm, ops []string, target float64, out io.Writer) error {
	if target <= 0 {
		target = defaultTarget
	}
	b := newCollBufs(c, ops)
	if c.Rank() == 0 {
		fmt.Fprintf(out, "# library: %s\n", library())
		fmt.Fprintf(out, "# ranks: %d  target_s_per_test: %.2f\n", c.Size(), target)
		fmt.Fprintf(out, "# %-10s %10s %10s %12s %12s %8s\n", "op", "count", "bytes", "max_us", "mean_us", "iters")
	}
	for _, op := range ops {
		var counts []int
		elem := 1
		switch op {
		case "allreduce":
			counts, elem = allreduceCounts, 8
		case "bcast":
			counts = bcastBytes
		case "alltoall":
			counts = alltoallBytes
		case "barrier":
			counts, elem = []int{0}, 0
		default:
			return fmt.Errorf("%w: unknown collective %q", errUsage, op)
		}
		for _, n := range only(counts) {
			if err := collTest(c, b, op, n, n*elem, target, out); err != nil {
				return fmt.Errorf("%s %d: %w", op, n, err)
			}
		}
	}
	if b.dsend != nil {
		// Sanity check, as coll.c: element 0 of the sum is the sum of the ranks.
		if err := collectives.Allreduce(c, b.dsend[:1], b.drecv[:1], collectives.Sum); err != nil {
			return err
		}
		p := c.Size()
		if want := float64(p*(p-1)) / 2; c.Rank() == 0 && b.drecv[0] != want {
			fmt.Fprintf(out, "# WARNING: allreduce check failed: %g\n", b.drecv[0])
		}
	}
	return nil
}

// collTest times one collective test as coll.c's bench does: warm-up calls,
// then batches of 1, 2, 4 … calls until a batch takes at least target/10 s
// (max over ranks, so all ranks agree), which gives the iteration count for
// about target seconds, clamped to [collMinIters, collMaxIters]; then the
// timed loop. Rank 0 prints the max and mean over ranks of µs per call.
func collTest(c *mpi.Comm, b *collBufs, op string, n, bytes int, target float64, out io.Writer) error {
	for range collWarmup {
		if err := b.call(c, op, n); err != nil {
			return err
		}
	}
	el, gel := []float64{0}, []float64{0}
	k := 1
	for {
		if err := collectives.Barrier(c); err != nil {
			return err
		}
		t0 := time.Now()
		for range k {
			if err := b.call(c, op, n); err != nil {
				return err
			}
		}
		el[0] = time.Since(t0).Seconds()
		if err := collectives.Allreduce(c, el, gel, collectives.Max); err != nil {
			return err
		}
		if gel[0] >= target/10 || k >= collMaxIters {
			break
		}
		k *= 2
	}
	iters := collMaxIters
	if gel[0] > 0 {
		// Clamp as a float: a tiny gel would overflow the conversion.
		iters = int(min(max(target/(gel[0]/float64(k)), collMinIters), collMaxIters))
	}

	if err := collectives.Barrier(c); err != nil {
		return err
	}
	t0 := time.Now()
	for range iters {
		if err := b.call(c, op, n); err != nil {
			return err
		}
	}
	per := []float64{time.Since(t0).Seconds() * 1e6 / float64(iters)}
	var pmax, psum []float64
	if c.Rank() == 0 {
		pmax, psum = []float64{0}, []float64{0}
	}
	if err := collectives.Reduce(c, per, pmax, collectives.Max, 0); err != nil {
		return err
	}
	if err := collectives.Reduce(c, per, psum, collectives.Sum, 0); err != nil {
		return err
	}
	if c.Rank() == 0 {
		fmt.Fprintf(out, "  %-10s %10d %10d %12.3f %12.3f %8d\n",
			op, n, bytes, pmax[0], psum[0]/float64(c.Size()), iters)
	}
	return nil
}
