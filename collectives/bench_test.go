package collectives

import (
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// BenchmarkAllreduce times each allreduce algorithm on 4 in-process ranks:
// BenchmarkAllreduce/{rd,rabenseifner,ring}/n=4/{8B,1MiB}.
func BenchmarkAllreduce(b *testing.B) {
	algos := []struct {
		name string
		fn   func(k call, buf []float64, op Op[float64]) error
	}{
		{"rd", allreduceRD[float64]},
		{"rabenseifner", allreduceRabenseifner[float64]},
		{"ring", allreduceRing[float64]},
	}
	const n = 4
	for _, a := range algos {
		for _, size := range []struct {
			name  string
			bytes int
		}{{"8B", 8}, {"1MiB", 1 << 20}} {
			b.Run(fmt.Sprintf("%s/n=%d/%s", a.name, n, size.name), func(b *testing.B) {
				b.SetBytes(int64(size.bytes))
				b.ReportAllocs()
				iters := b.N
				mpitest.Run(b, n, func(c *mpi.Comm) error {
					buf := make([]float64, size.bytes/8)
					if err := Barrier(c); err != nil {
						return err
					}
					if c.Rank() == 0 {
						b.ResetTimer()
					}
					for range iters {
						if err := a.fn(newCall(c), buf, Sum[float64]); err != nil {
							return err
						}
					}
					return nil
				})
			})
		}
	}
}

// BenchmarkReduce times each reduce algorithm on 4 in-process ranks, to
// root 1: BenchmarkReduce/{binomial,rabenseifner}/n=4/{32KiB,1MiB}.
func BenchmarkReduce(b *testing.B) {
	algos := []struct {
		name string
		fn   func(k call, in, out []float64) error
	}{
		{"binomial", func(k call, in, out []float64) error { return reduceBinomial(k, in, out, Sum[float64], 1, true) }},
		{"rabenseifner", func(k call, in, out []float64) error { return reduceRabenseifner(k, in, out, Sum[float64], 1) }},
	}
	const n = 4
	for _, a := range algos {
		for _, size := range []struct {
			name  string
			bytes int
		}{{"32KiB", 32 << 10}, {"1MiB", 1 << 20}} {
			b.Run(fmt.Sprintf("%s/n=%d/%s", a.name, n, size.name), func(b *testing.B) {
				b.SetBytes(int64(size.bytes))
				iters := b.N
				mpitest.Run(b, n, func(c *mpi.Comm) error {
					in, out := make([]float64, size.bytes/8), make([]float64, size.bytes/8)
					if err := Barrier(c); err != nil {
						return err
					}
					if c.Rank() == 0 {
						b.ResetTimer()
					}
					for range iters {
						if err := a.fn(newCall(c), in, out); err != nil {
							return err
						}
					}
					return nil
				})
			})
		}
	}
}
