package collectives

import (
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// TestSmallAllreduceAllocs pins the allocations of a steady-state small
// Allreduce, Barrier and Bcast on two ranks: none. Scratch vectors come from
// pools, the plan is a value, and the commutativity of the package's
// operations is looked up once. Both ranks run the same number of calls
// inside rank 0's measurement (testing.AllocsPerRun counts the whole
// process), so the count covers both sides.
func TestSmallAllreduceAllocs(t *testing.T) {
	const runs = 200
	for _, tc := range []struct {
		name string
		fn   func(c *mpi.Comm, in, out []float64) error
	}{
		{"allreduce", func(c *mpi.Comm, in, out []float64) error { return Allreduce(c, in, out, Sum[float64]) }},
		{"barrier", func(c *mpi.Comm, _, _ []float64) error { return Barrier(c) }},
		// The root alternates, so that neither rank runs ahead and piles up
		// unexpected messages (their records are pooled only up to a cap).
		{"bcast", func(c *mpi.Comm, in, out []float64) error {
			out[0]++
			return Bcast(c, in, int(out[0])%2)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mpitest.Run(t, 2, func(c *mpi.Comm) error {
				in, out := []float64{float64(c.Rank())}, make([]float64, 1)
				var err error
				step := func() {
					if e := tc.fn(c, in, out); e != nil && err == nil {
						err = e
					}
				}
				for range 20 {
					step()
				}
				if err := Barrier(c); err != nil {
					return err
				}
				if c.Rank() != 0 {
					for range runs + 1 { // AllocsPerRun makes one warm-up call
						step()
					}
					return err
				}
				n := testing.AllocsPerRun(runs, step)
				if err != nil {
					return err
				}
				if n > 0 {
					return fmt.Errorf("%s of one float64 on 2 ranks allocates %.2f times a call; want 0", tc.name, n)
				}
				return nil
			})
		})
	}
}
