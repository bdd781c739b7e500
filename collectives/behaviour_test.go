package collectives

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// TestAllreduceDeterministic: random float64 sums (where order changes the
// bits) are bitwise identical on all 7 ranks and across two runs, for each
// algorithm the dispatcher may pick.
func TestAllreduceDeterministic(t *testing.T) {
	const n = 7
	for _, count := range []int{1000, 100_000} {
		t.Run(fmt.Sprintf("n=%d/count=%d", n, count), func(t *testing.T) {
			var runs [2][]float64
			for i := range runs {
				mpitest.Run(t, n, func(c *mpi.Comm) error {
					rng := rand.New(rand.NewPCG(uint64(c.Rank()), 42))
					in := make([]float64, count)
					for j := range in {
						in[j] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)))
					}
					out := make([]float64, count)
					if err := Allreduce(c, in, out, Sum); err != nil {
						return err
					}
					var all []float64
					if c.Rank() == 0 {
						all = make([]float64, n*count)
					}
					if err := Gather(c, out, all, 0); err != nil {
						return err
					}
					if c.Rank() != 0 {
						return nil
					}
					for r := 1; r < n; r++ {
						for j := range count {
							if math.Float64bits(all[r*count+j]) != math.Float64bits(out[j]) {
								return fmt.Errorf("allreduce[%d] on rank %d = %x; rank 0 has %x", j, r, all[r*count+j], out[j])
							}
						}
					}
					runs[i] = out
					return nil
				})
			}
			for j := range runs[0] {
				if math.Float64bits(runs[0][j]) != math.Float64bits(runs[1][j]) {
					t.Fatalf("allreduce[%d] = %x in run 1, %x in run 2", j, runs[0][j], runs[1][j])
				}
			}
		})
	}
}

// TestReduceDeterministic: a long Reduce of random float64s (where the
// bracketing changes the bits) gives bitwise the same result at every root
// as allreduceRabenseifner, whose brackets it shares (and which
// TestAllreduceDeterministic checks from run to run), for the rank counts
// that fold (3, 5, 7) and those that do not.
func TestReduceDeterministic(t *testing.T) {
	gen := func(r, count int) []float64 {
		rng := rand.New(rand.NewPCG(uint64(r), 7))
		in := make([]float64, count)
		for j := range in {
			in[j] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)))
		}
		return in
	}
	for _, n := range []int{2, 3, 4, 5, 7, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			const count = 5000 // 40 KiB: Rabenseifner
			mpitest.Run(t, n, func(c *mpi.Comm) error {
				in := gen(c.Rank(), count)
				want := append([]float64(nil), in...)
				if err := allreduceRabenseifner(newCall(c), want, Sum); err != nil {
					return err
				}
				for root := range n {
					var out []float64
					if c.Rank() == root {
						out = make([]float64, count)
					}
					if err := Reduce(c, in, out, Sum, root); err != nil {
						return err
					}
					if c.Rank() != root {
						continue
					}
					for j := range count {
						if math.Float64bits(out[j]) != math.Float64bits(want[j]) {
							return fmt.Errorf("reduce to %d: [%d] = %x; allreduceRabenseifner has %x", root, j, out[j], want[j])
						}
					}
				}
				return nil
			})
		})
	}
}

// TestNonBlockingOverlap: two Iallreduce and an Ibcast outstanding at
// once, a blocking Allreduce issued meanwhile, and user messages on the same
// communicator, all give the right answers.
func TestNonBlockingOverlap(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7} {
		for _, count := range []int{7, 100_000} {
			t.Run(fmt.Sprintf("n=%d/count=%d", n, count), func(t *testing.T) {
				mpitest.Run(t, n, func(c *mpi.Comm) error {
					p, r := c.Size(), c.Rank()
					user := make([]int64, 1)
					uq, err := mpi.Irecv(c, user, mpi.AnySource, mpi.AnyTag)
					if err != nil {
						return err
					}
					a := make([]float64, count)
					b := make([]int64, count)
					x := make([]float64, count)
					for i := range count {
						a[i], b[i] = float64(r+i), int64(r*i)
						if r == p-1 {
							x[i] = float64(i) / 3
						}
					}
					q1 := Iallreduce(c, nil, a, Sum)
					q2 := Iallreduce(c, nil, b, Max)
					q3 := Ibcast(c, x, p-1)
					s := []int32{int32(r)}
					if err := Allreduce(c, nil, s, Sum); err != nil {
						return err
					}
					if err := mpi.WaitAll(q1, q2, q3); err != nil {
						return err
					}
					if err := mpi.Send(c, []int64{int64(r)}, (r+1)%p, 5); err != nil {
						return err
					}
					if _, err := uq.Wait(); err != nil {
						return err
					}
					if want := int64((r - 1 + p) % p); user[0] != want {
						return fmt.Errorf("user message = %d; want %d", user[0], want)
					}
					if want := int32(p * (p - 1) / 2); s[0] != want {
						return fmt.Errorf("blocking allreduce = %d; want %d", s[0], want)
					}
					for i := range count {
						if wa, wb, wx := float64(p*(p-1)/2+p*i), int64((p-1)*i), float64(i)/3; a[i] != wa || b[i] != wb || x[i] != wx {
							return fmt.Errorf("[%d]: iallreduce sum %v, max %v, ibcast %v; want %v, %v, %v", i, a[i], b[i], x[i], wa, wb, wx)
						}
					}
					return nil
				})
			})
		}
	}
	t.Run("ireduce-iallgather-ibarrier", func(t *testing.T) {
		mpitest.Run(t, 5, func(c *mpi.Comm) error {
			p, r := c.Size(), c.Rank()
			sum := make([]int, 3)
			all := make([]int, p)
			q1 := Ireduce(c, []int{r, r, r}, sum, Sum, 2)
			q2 := Iallgather(c, []int{r * r}, all)
			q3 := Ibarrier(c)
			if err := mpi.WaitAll(q1, q2, q3); err != nil {
				return err
			}
			for i := range p {
				if all[i] != i*i {
					return fmt.Errorf("iallgather[%d] = %d", i, all[i])
				}
			}
			if r == 2 && sum[0] != p*(p-1)/2 {
				return fmt.Errorf("ireduce = %v", sum)
			}
			return nil
		})
	})
}

// goErr runs fn on n ranks, bounded by a deadline so that an undetected
// mismatch fails instead of hanging, and returns the errors of all ranks
// joined (peers of the rank that detected a mismatch fail otherwise, with
// mpi.ErrAborted or mpi.ErrPeerLost).
func goErr(t *testing.T, n int, fn func(c *mpi.Comm) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	errs := make([]error, n)
	_ = mpitest.Go(ctx, n, abortOnError(func(c *mpi.Comm) error { // errors are collected per rank
		err := fn(c)
		errs[c.Rank()] = err
		return err
	}))
	if ctx.Err() != nil {
		t.Fatalf("timed out: mismatch not detected (%v)", errors.Join(errs...))
	}
	return errors.Join(errs...)
}

func TestMismatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		fn   func(c *mpi.Comm) error
		want []error
	}{
		{"bcast/shorter-at-root", 4, func(c *mpi.Comm) error {
			return Bcast(c, make([]float64, 7+min(c.Rank(), 1)), 0)
		}, []error{ErrMismatch}},
		{"bcast/longer-at-root", 4, func(c *mpi.Comm) error {
			return Bcast(c, make([]float64, 7-min(c.Rank(), 1)), 0)
		}, []error{ErrMismatch, mpi.ErrTruncate}},
		{"bcast/long-vs-short-algorithm", 5, func(c *mpi.Comm) error {
			n := 1 << 16
			if c.Rank() == 3 {
				n = 10
			}
			return Bcast(c, make([]float64, n), 0)
		}, []error{ErrMismatch}},
		{"bcast/type", 3, func(c *mpi.Comm) error {
			if c.Rank() == 0 {
				return Bcast(c, make([]float64, 4), 0)
			}
			return Bcast(c, make([]int64, 4), 0)
		}, []error{ErrMismatch, mpi.ErrType}},
		{"reduce/count", 5, func(c *mpi.Comm) error {
			n := 7
			if c.Rank() == 4 {
				n = 6
			}
			return Reduce(c, make([]int, n), make([]int, n), Sum, 0)
		}, []error{ErrMismatch}},
		{"allreduce/count", 7, func(c *mpi.Comm) error {
			n := 7
			if c.Rank() == 1 {
				n = 5
			}
			return Allreduce(c, nil, make([]float64, n), Sum)
		}, []error{ErrMismatch}},
		{"allreduce/long-vs-short-algorithm", 4, func(c *mpi.Comm) error {
			n := 1 << 14
			if c.Rank() == 2 {
				n = 1
			}
			return Allreduce(c, nil, make([]float64, n), Sum)
		}, []error{ErrMismatch}},
		{"gather/count", 4, func(c *mpi.Comm) error {
			n := 3 + c.Rank()%2
			return Gather(c, make([]int, n), make([]int, 4*n), 0)
		}, []error{ErrMismatch}},
		{"gatherv/counts", 3, func(c *mpi.Comm) error {
			return Gatherv(c, make([]int, 2), make([]int, 6), []int{2, 1, 3}, []int{0, 2, 3}, 0)
		}, []error{ErrMismatch}},
		{"scatter/count", 4, func(c *mpi.Comm) error {
			n := 3 + c.Rank()%2
			return Scatter(c, make([]int, 4*n), make([]int, n), 0)
		}, []error{ErrMismatch}},
		{"allgather/count", 3, func(c *mpi.Comm) error {
			n := 2 + c.Rank()/2
			return Allgather(c, make([]int, n), make([]int, 3*n))
		}, []error{ErrMismatch}},
		{"alltoallv/counts", 3, func(c *mpi.Comm) error {
			rc := []int{1, 1, 1}
			if c.Rank() == 1 {
				rc = []int{2, 1, 1}
			}
			return Alltoallv(c, make([]int, 3), []int{1, 1, 1}, []int{0, 1, 2}, make([]int, 4), rc, []int{0, 2, 3})
		}, []error{ErrMismatch}},
		{"alltoallv-inplace/asymmetric-counts", 3, func(c *mpi.Comm) error {
			rc := []int{1, 1, 1}
			if c.Rank() == 2 {
				rc = []int{2, 1, 1}
			}
			return Alltoallv(c, nil, nil, nil, make([]int, 4), rc, []int{0, 2, 3})
		}, []error{ErrMismatch}},
		{"scan/count", 4, func(c *mpi.Comm) error {
			n := 4 + c.Rank()/3
			return Scan(c, make([]int, n), make([]int, n), Sum)
		}, []error{ErrMismatch}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := goErr(t, tc.n, tc.fn)
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Errorf("err = %v; want %v", err, want)
				}
			}
		})
	}
}

// TestRootMismatch: rooted collectives called with different roots fail
// with ErrMismatch on at least one rank instead of hanging or handing out
// wrong data. Each case has every rank but one pass root 0 and the odd
// rank another root; the short trees (Bcast, Scatter) catch it from the
// sender of the odd rank's block, the long paths and the v and value forms
// with the root check.
func TestRootMismatch(t *testing.T) {
	// root returns 0, or other on rank odd.
	root := func(c *mpi.Comm, odd, other int) int {
		if c.Rank() == odd {
			return other
		}
		return 0
	}
	const long = 1 << 15 // float64s: 256 KiB, a long Bcast and Reduce
	const block = 512    // float64s: 4 KiB per rank, a long Gather and Scatter
	for _, tc := range []struct {
		name string
		n    int
		fn   func(c *mpi.Comm) error
	}{
		// Rank 3 expects its block from rank 1 (tree around root 1) and
		// gets it from rank 2 (tree around root 0).
		{"bcast/short", 4, func(c *mpi.Comm) error { return Bcast(c, make([]float64, 7), root(c, 3, 1)) }},
		{"ibcast/short", 4, func(c *mpi.Comm) error {
			_, err := Ibcast(c, make([]float64, 7), root(c, 3, 1)).Wait()
			return err
		}},
		{"bcast/long", 3, func(c *mpi.Comm) error { return Bcast(c, make([]float64, long), root(c, 1, 2)) }},
		{"bcast/long-two-ranks", 2, func(c *mpi.Comm) error { return Bcast(c, make([]float64, long), root(c, 1, 1)) }},
		{"reduce/long", 4, func(c *mpi.Comm) error {
			return Reduce(c, make([]float64, long), make([]float64, long), Sum, root(c, 2, 1))
		}},
		{"reduce/long-noncommutative", 4, func(c *mpi.Comm) error {
			return Reduce(c, make([]uint64, long), make([]uint64, long), affine, root(c, 0, 3))
		}},
		{"ireduce/long", 3, func(c *mpi.Comm) error {
			_, err := Ireduce(c, make([]float64, long), make([]float64, long), Max, root(c, 1, 1)).Wait()
			return err
		}},
		{"gather/long", 3, func(c *mpi.Comm) error {
			return Gather(c, make([]float64, block), make([]float64, 3*block), root(c, 2, 1))
		}},
		{"gatherv", 3, func(c *mpi.Comm) error {
			return Gatherv(c, make([]int, 2), make([]int, 6), []int{2, 2, 2}, []int{0, 2, 4}, root(c, 0, 1))
		}},
		{"scatter/short", 4, func(c *mpi.Comm) error {
			return Scatter(c, make([]float64, 4*3), make([]float64, 3), root(c, 3, 1))
		}},
		{"scatter/long", 3, func(c *mpi.Comm) error {
			return Scatter(c, make([]float64, 3*block), make([]float64, block), root(c, 1, 2))
		}},
		{"scatterv", 3, func(c *mpi.Comm) error {
			return Scatterv(c, make([]int, 6), []int{2, 2, 2}, []int{0, 2, 4}, make([]int, 2), root(c, 2, 2))
		}},
		{"bcast-value", 3, func(c *mpi.Comm) error {
			v := "x"
			return BcastValue(c, &v, root(c, 1, 2))
		}},
		{"gather-value", 3, func(c *mpi.Comm) error {
			_, err := GatherValue(c, c.Rank(), root(c, 2, 2))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := goErr(t, tc.n, tc.fn); !errors.Is(err, ErrMismatch) {
				t.Fatalf("err = %v; want ErrMismatch", err)
			}
		})
	}
}

// TestArgumentErrors: mistakes detectable locally fail on the rank that
// made them, with the package prefix and the mpi sentinel, without
// panicking.
func TestArgumentErrors(t *testing.T) {
	f := make([]float64, 4)
	for _, tc := range []struct {
		name string
		fn   func(c *mpi.Comm) error
		want error
	}{
		{"bcast/root", func(c *mpi.Comm) error { return Bcast(c, f, 3) }, mpi.ErrRank},
		{"bcast/negative-root", func(c *mpi.Comm) error { return Bcast(c, f, -1) }, mpi.ErrRank},
		{"ibcast/root", func(c *mpi.Comm) error { _, err := Ibcast(c, f, 9).Wait(); return err }, mpi.ErrRank},
		{"reduce/root", func(c *mpi.Comm) error { return Reduce(c, f, f, Sum, 2) }, mpi.ErrRank},
		{"reduce/nil-op", func(c *mpi.Comm) error { return Reduce(c, f, f, nil, 0) }, mpi.ErrCount},
		{"allreduce/lengths", func(c *mpi.Comm) error { return Allreduce(c, f, f[:3], Sum) }, mpi.ErrCount},
		{"iallreduce/nil-op", func(c *mpi.Comm) error { _, err := Iallreduce(c, f, f, nil).Wait(); return err }, mpi.ErrCount},
		{"gather/recv", func(c *mpi.Comm) error { return Gather(c, f, f, 0) }, mpi.ErrCount},
		{"gatherv/layout", func(c *mpi.Comm) error { return Gatherv(c, f[:1], f, []int{1, 5}, []int{0, 1}, 0) }, mpi.ErrCount},
		{"gatherv/overlap", func(c *mpi.Comm) error { return Gatherv(c, f[:2], f, []int{2, 2}, []int{0, 1}, 0) }, mpi.ErrCount},
		{"scatter/send", func(c *mpi.Comm) error { return Scatter(c, f, f, 1) }, mpi.ErrCount},
		{"allgather/recv", func(c *mpi.Comm) error { return Allgather(c, f, f) }, mpi.ErrCount},
		{"alltoall/lengths", func(c *mpi.Comm) error { return Alltoall(c, f[:3], f[:3]) }, mpi.ErrCount},
		{"alltoall/inplace-length", func(c *mpi.Comm) error { return Alltoall(c, nil, f[:3]) }, mpi.ErrCount},
		{"reduce-scatter/inplace-length", func(c *mpi.Comm) error { return ReduceScatter(c, nil, f[:2], []int{2, 1}, Sum) }, mpi.ErrCount},
		{"reduce-scatter/counts", func(c *mpi.Comm) error { return ReduceScatter(c, f, f[:2], []int{2, 1}, Sum) }, mpi.ErrCount},
		{"bcast-value/nil", func(c *mpi.Comm) error { return BcastValue[int](c, nil, 0) }, mpi.ErrCount},
		{"gather-value/root", func(c *mpi.Comm) error { _, err := GatherValue(c, 1, 5); return err }, mpi.ErrRank},
		{"scan/lengths", func(c *mpi.Comm) error { return Exscan(c, f, f[:1], Sum) }, mpi.ErrCount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := mpitest.Go(t.Context(), 2, abortOnError(tc.fn))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v; want %v", err, tc.want)
			}
			if want := "collectives: "; !strings.Contains(err.Error(), want) {
				t.Errorf("err = %q; want the prefix %q", err, want)
			}
		})
	}
	if err := Barrier(nil); err == nil {
		t.Error("Barrier(nil) = nil; want an error")
	}
	if q := Ibarrier(nil); q != nil {
		t.Error("Ibarrier(nil) != nil")
	}
}
