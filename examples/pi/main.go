// Command pi computes π = ∫₀¹ 4/(1+x²) dx with the midpoint rule: each rank
// sums its share of the intervals, and one collective reduction adds the
// shares up. It prints the error against math.Pi.
//
//	gorun -n 4 ./examples/pi -intervals 100000000
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

func main() {
	n := flag.Int("intervals", 50_000_000, "number of intervals of the midpoint rule")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "pi:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	world, err := mpi.Init(context.Background())
	if err != nil {
		return err
	}
	start := mpi.Wtime()
	pi, err := integrate(world, n)
	if err != nil {
		return world.Abort(1, "pi: "+err.Error())
	}
	if world.Rank() == 0 {
		fmt.Printf("pi ≈ %.15f with %d intervals on %d ranks, error %.1e, %.3f s\n",
			pi, n, world.Size(), pi-math.Pi, mpi.Wtime()-start)
	}
	return world.Finalize()
}

// integrate returns the midpoint-rule estimate of π with n intervals on
// every rank of c. Rank r takes the r-th of Size() nearly equal runs of
// intervals; Allreduce adds the partial sums, in rank order, and gives every
// rank the total (Reduce would give it to one rank only).
func integrate(c *mpi.Comm, n int) (float64, error) {
	if n < 1 {
		return 0, fmt.Errorf("intervals must be positive, not %d", n)
	}
	p, r := c.Size(), c.Rank()
	lo, hi := r*(n/p)+min(r, n%p), (r+1)*(n/p)+min(r+1, n%p)
	h := 1 / float64(n)
	sum := 0.0
	for i := lo; i < hi; i++ {
		x := (float64(i) + 0.5) * h
		sum += 4 / (1 + x*x)
	}
	total := []float64{0}
	if err := collectives.Allreduce(c, []float64{sum * h}, total, collectives.Sum); err != nil {
		return 0, err
	}
	return total[0], nil
}
