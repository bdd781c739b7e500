package main

import (
	"fmt"
	"math"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// The estimate converges like 1/n² (the midpoint rule's order), on any
// number of ranks, including more ranks than intervals.
func TestIntegrate(t *testing.T) {
	for _, p := range []int{1, 3, 4} {
		for _, n := range []int{2, 1000, 2000} {
			t.Run(fmt.Sprintf("p=%d/n=%d", p, n), func(t *testing.T) {
				mpitest.Run(t, p, func(c *mpi.Comm) error {
					pi, err := integrate(c, n)
					if err != nil {
						return err
					}
					// The midpoint rule's error is −h²·(f′(1) − f′(0))/24 + O(h⁴) = 1/(12n²) here.
					want := 1 / (12 * float64(n*n))
					if e := pi - math.Pi; math.Abs(e/want-1) > 0.01 { // the rule overestimates
						return fmt.Errorf("error %.4g; want %.4g", e, want)
					}
					return nil
				})
			})
		}
	}
}
