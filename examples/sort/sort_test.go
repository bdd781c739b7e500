package main

import (
	"fmt"
	"slices"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// The parts, put together in rank order, are the sorted input, for uneven
// inputs, empty ones and many duplicates.
func TestSampleSort(t *testing.T) {
	for _, tc := range []struct {
		p, count int
		dup      bool
	}{{1, 100, false}, {2, 1000, false}, {3, 1000, true}, {4, 3, false}, {5, 0, false}} {
		t.Run(fmt.Sprintf("p=%d/count=%d/dup=%v", tc.p, tc.count, tc.dup), func(t *testing.T) {
			inputs := make([][]int64, tc.p)
			parts := make([][]int64, tc.p)
			for r := range inputs {
				inputs[r] = input(r, tc.count)
				if tc.dup {
					for i := range inputs[r] {
						inputs[r][i] %= 7
					}
				}
			}
			mpitest.Run(t, tc.p, func(c *mpi.Comm) error {
				out, err := sampleSort(c, inputs[c.Rank()])
				if err != nil {
					return err
				}
				parts[c.Rank()] = out
				return verify(c, inputs[c.Rank()], out)
			})
			want := slices.Sorted(slices.Values(slices.Concat(inputs...)))
			if got := slices.Concat(parts...); !slices.Equal(got, want) {
				t.Errorf("sorted %d numbers into %d; parts differ from the sorted input", len(want), len(got))
			}
		})
	}
}
