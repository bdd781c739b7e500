package main

import (
	"fmt"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// The distributed product matches the serial one, also with uneven row
// blocks and with more ranks than rows.
func TestMultiply(t *testing.T) {
	for _, tc := range []struct{ p, n, k, m int }{{1, 7, 5, 3}, {3, 10, 4, 6}, {4, 9, 8, 7}, {4, 2, 3, 5}} {
		t.Run(fmt.Sprintf("p=%d/%dx%dx%d", tc.p, tc.n, tc.k, tc.m), func(t *testing.T) {
			a, b := random(tc.n, tc.k, 1), random(tc.k, tc.m, 2)
			var want mat.Dense
			want.Mul(a, b)
			mpitest.Run(t, tc.p, func(c *mpi.Comm) error {
				var ra, rb *mat.Dense
				if c.Rank() == 0 {
					ra, rb = a, b
				}
				got, err := multiply(c, ra, rb, tc.n, tc.k, tc.m)
				if err != nil || c.Rank() != 0 {
					return err
				}
				if d := maxDiff(got, &want); d > 1e-12 {
					return fmt.Errorf("product differs from the serial one by %g", d)
				}
				return nil
			})
		})
	}
}
