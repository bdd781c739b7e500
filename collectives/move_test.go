package collectives

import (
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// perRank is the block length per rank of a data-movement test with count
// elements: count, but bigCount/p for bigCount, so that the buffers of the
// gather, scatter and alltoall family hold about bigCount elements, not p
// times that.
func perRank(count, p int) int {
	if count >= bigCount {
		return count / p
	}
	return count
}

// val is element i of rank r's data in the data-movement tests (distinct
// for i < 2²⁴).
func val(r, i int) float64 { return float64(r<<24 + i) }

func vals(r, lo, hi int) []float64 {
	v := make([]float64, hi-lo)
	for i := range v {
		v[i] = val(r, lo+i)
	}
	return v
}

// bcastFn is a broadcast under test.
type bcastFn func(c *mpi.Comm, buf []float64, root int) error

func testBcast(t *testing.T, counts []int, fn bcastFn) {
	rootCases(t, counts, nil, func(t *testing.T, n, count, root, _ int, comm string) {
		run(t, n, comm, func(c *mpi.Comm) error {
			root := root % c.Size()
			buf := make([]float64, count)
			if c.Rank() == root {
				copy(buf, vals(root, 0, count))
			}
			if err := fn(c, buf, root); err != nil {
				return err
			}
			return same(fmt.Sprintf("bcast(n=%d, count=%d, root=%d) on rank %d", c.Size(), count, root, c.Rank()), buf, vals(root, 0, count))
		})
	})
}

func direct(f func(k call, buf []float64, root int) error) bcastFn {
	return func(c *mpi.Comm, buf []float64, root int) error {
		if c.Size() == 1 {
			return nil
		}
		return f(newCall(c), buf, root)
	}
}

func TestBcast(t *testing.T) {
	t.Run("dispatch", func(t *testing.T) { testBcast(t, bigCounts(t), Bcast[float64]) })
	t.Run("binomial", func(t *testing.T) { testBcast(t, elemCounts, direct(bcastBinomial[float64])) })
	t.Run("scatter-allgather", func(t *testing.T) { testBcast(t, elemCounts, direct(bcastScatterAllgather[float64])) })
	t.Run("int8", func(t *testing.T) {
		run(t, 5, "world", func(c *mpi.Comm) error {
			buf := make([]int8, 300)
			if c.Rank() == 2 {
				for i := range buf {
					buf[i] = int8(i)
				}
			}
			if err := Bcast(c, buf, 2); err != nil {
				return err
			}
			for i := range buf {
				if buf[i] != int8(i) {
					return fmt.Errorf("bcast int8[%d] = %d; want %d", i, buf[i], int8(i))
				}
			}
			return nil
		})
	})
}

func TestBcastValue(t *testing.T) {
	type params struct {
		Name  string
		Steps int
		Coef  map[string]float64
	}
	for _, n := range rankCounts {
		for root := range n {
			t.Run(fmt.Sprintf("n=%d/root=%d", n, root), func(t *testing.T) {
				run(t, n, "world", func(c *mpi.Comm) error {
					want := params{"run", root + 10, map[string]float64{"k": 0.5}}
					v := params{Name: "stale", Coef: map[string]float64{"old": 1}}
					if c.Rank() == root {
						v = want
					}
					if err := BcastValue(c, &v, root); err != nil {
						return err
					}
					if v.Name != want.Name || v.Steps != want.Steps || len(v.Coef) != 1 || v.Coef["k"] != 0.5 {
						return fmt.Errorf("BcastValue on rank %d = %+v; want %+v", c.Rank(), v, want)
					}
					return nil
				})
			})
		}
	}
}

func TestGatherValue(t *testing.T) {
	for _, n := range rankCounts {
		for root := range n {
			t.Run(fmt.Sprintf("n=%d/root=%d", n, root), func(t *testing.T) {
				run(t, n, "split", func(c *mpi.Comm) error {
					root := root % c.Size()
					got, err := GatherValue(c, fmt.Sprintf("rank %d", c.Rank()), root)
					if err != nil {
						return err
					}
					if c.Rank() != root {
						if got != nil {
							return fmt.Errorf("GatherValue on non-root = %v; want nil", got)
						}
						return nil
					}
					want := make([]string, c.Size())
					for i := range want {
						want[i] = fmt.Sprintf("rank %d", i)
					}
					return same("GatherValue", got, want)
				})
			})
		}
	}
}

type gatherFn func(c *mpi.Comm, send, recv []float64, root int) error

func testGather(t *testing.T, counts []int, fn gatherFn, inPlace bool) {
	rootCases(t, counts, nil, func(t *testing.T, n, count, root, _ int, comm string) {
		run(t, n, comm, func(c *mpi.Comm) error {
			count := perRank(count, c.Size())
			p, r := c.Size(), c.Rank()
			root := root % p
			send := vals(r, 0, count)
			var recv []float64
			if r == root {
				recv = make([]float64, p*count)
				if inPlace {
					copy(recv[r*count:], send)
					send = nil
				}
			}
			if err := fn(c, send, recv, root); err != nil {
				return err
			}
			if r != root {
				return nil
			}
			var want []float64
			for i := range p {
				want = append(want, vals(i, 0, count)...)
			}
			return same(fmt.Sprintf("gather(n=%d, count=%d, root=%d)", p, count, root), recv, want)
		})
	})
}

func TestGather(t *testing.T) {
	t.Run("dispatch", func(t *testing.T) { testGather(t, bigCounts(t), Gather[float64], false) })
	t.Run("inplace", func(t *testing.T) { testGather(t, elemCounts, Gather[float64], true) })
	t.Run("binomial", func(t *testing.T) {
		testGather(t, elemCounts, func(c *mpi.Comm, send, recv []float64, root int) error {
			if c.Size() == 1 {
				copy(recv, send)
				return nil
			}
			return gatherBinomial(newCall(c), send, recv, len(send), root)
		}, false)
	})
	t.Run("linear", func(t *testing.T) {
		testGather(t, elemCounts, func(c *mpi.Comm, send, recv []float64, root int) error {
			counts, displs := uniformLayout(len(send), c.Size())
			if c.Size() == 1 {
				copy(recv, send)
				return nil
			}
			return gatherLinear(newCall(c), send, recv, counts, displs, root)
		}, false)
	})
	t.Run("v", func(t *testing.T) {
		// rank i sends i+count elements, stored in reverse rank order with gaps
		rootCases(t, append([]int{0, 7}, big(t)...), nil, func(t *testing.T, n, count, root, _ int, comm string) {
			run(t, n, comm, func(c *mpi.Comm) error {
				count := perRank(count, c.Size())
				p, r := c.Size(), c.Rank()
				root := root % p
				counts, displs := make([]int, p), make([]int, p)
				at := 0
				for i := p - 1; i >= 0; i-- {
					counts[i], displs[i] = i+count, at+1
					at += i + count + 1
				}
				recv := make([]float64, at)
				if err := Gatherv(c, vals(r, 0, r+count), recv, counts, displs, root); err != nil {
					return err
				}
				if r != root {
					return nil
				}
				for i := range p {
					if err := same(fmt.Sprintf("gatherv block %d", i), recv[displs[i]:displs[i]+counts[i]], vals(i, 0, i+count)); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}

type scatterFn func(c *mpi.Comm, send, recv []float64, root int) error

func testScatter(t *testing.T, counts []int, fn scatterFn, inPlace bool) {
	rootCases(t, counts, nil, func(t *testing.T, n, count, root, _ int, comm string) {
		run(t, n, comm, func(c *mpi.Comm) error {
			count := perRank(count, c.Size())
			p, r := c.Size(), c.Rank()
			root := root % p
			var send []float64
			if r == root {
				send = vals(root, 0, p*count)
			}
			recv := make([]float64, count)
			if inPlace && r == root {
				recv = nil
			}
			if err := fn(c, send, recv, root); err != nil {
				return err
			}
			got := recv
			if recv == nil {
				got = send[r*count : (r+1)*count]
			}
			return same(fmt.Sprintf("scatter(n=%d, count=%d, root=%d) on rank %d", p, count, root, r), got, vals(root, r*count, (r+1)*count))
		})
	})
}

func TestScatter(t *testing.T) {
	t.Run("dispatch", func(t *testing.T) { testScatter(t, bigCounts(t), Scatter[float64], false) })
	t.Run("inplace", func(t *testing.T) { testScatter(t, elemCounts, Scatter[float64], true) })
	t.Run("binomial", func(t *testing.T) {
		testScatter(t, elemCounts, func(c *mpi.Comm, send, recv []float64, root int) error {
			if c.Size() == 1 {
				copy(recv, send)
				return nil
			}
			return scatterBlocksBinomial(newCall(c), send, recv, len(recv), root)
		}, false)
	})
	t.Run("linear", func(t *testing.T) {
		testScatter(t, elemCounts, func(c *mpi.Comm, send, recv []float64, root int) error {
			if c.Size() == 1 {
				copy(recv, send)
				return nil
			}
			counts, displs := uniformLayout(len(recv), c.Size())
			return scatterLinear(newCall(c), send, recv, counts, displs, root)
		}, false)
	})
	t.Run("v", func(t *testing.T) {
		rootCases(t, append([]int{0, 7}, big(t)...), nil, func(t *testing.T, n, count, root, _ int, comm string) {
			run(t, n, comm, func(c *mpi.Comm) error {
				count := perRank(count, c.Size())
				p, r := c.Size(), c.Rank()
				root := root % p
				counts, displs := make([]int, p), make([]int, p)
				for i := range p { // overlapping blocks are allowed on the send side
					counts[i], displs[i] = i+count, i
				}
				var send []float64
				if r == root {
					send = vals(root, 0, p+p+count)
				}
				recv := make([]float64, r+count)
				if err := Scatterv(c, send, counts, displs, recv, root); err != nil {
					return err
				}
				return same(fmt.Sprintf("scatterv on rank %d", r), recv, vals(root, r, r+r+count))
			})
		})
	})
}

type allgatherFn func(c *mpi.Comm, send, recv []float64) error

func testAllgather(t *testing.T, counts []int, fn allgatherFn, pof2Only, inPlace bool) {
	cases(t, counts, nil, func(t *testing.T, n, count, _ int, comm string) {
		run(t, n, comm, func(c *mpi.Comm) error {
			count := perRank(count, c.Size())
			p, r := c.Size(), c.Rank()
			if pof2Only && p != pof2Below(p) {
				return nil
			}
			send := vals(r, 0, count)
			recv := make([]float64, p*count)
			if inPlace {
				copy(recv[r*count:], send)
				send = nil
			}
			if err := fn(c, send, recv); err != nil {
				return err
			}
			var want []float64
			for i := range p {
				want = append(want, vals(i, 0, count)...)
			}
			return same(fmt.Sprintf("allgather(n=%d, count=%d) on rank %d", p, count, r), recv, want)
		})
	})
}

func TestAllgather(t *testing.T) {
	t.Run("dispatch", func(t *testing.T) { testAllgather(t, bigCounts(t), Allgather[float64], false, false) })
	t.Run("inplace", func(t *testing.T) { testAllgather(t, []int{7, 10000}, Allgather[float64], false, true) })
	t.Run("rd", func(t *testing.T) {
		testAllgather(t, elemCounts, func(c *mpi.Comm, send, recv []float64) error {
			copy(recv[c.Rank()*len(send):], send)
			return allgatherRD(newCall(c), recv, len(send))
		}, true, false)
	})
	t.Run("ring", func(t *testing.T) {
		testAllgather(t, elemCounts, func(c *mpi.Comm, send, recv []float64) error {
			n := len(send)
			copy(recv[c.Rank()*n:], send)
			return allgatherRing(newCall(c), recv, 0, func(i int) (int, int) { return i * n, (i + 1) * n }, stepAllgather)
		}, false, false)
	})
	t.Run("v", func(t *testing.T) {
		cases(t, append([]int{0, 7}, big(t)...), nil, func(t *testing.T, n, count, _ int, comm string) {
			run(t, n, comm, func(c *mpi.Comm) error {
				isBig, count := count >= bigCount, perRank(count, c.Size())
				p, r := c.Size(), c.Rank()
				counts, displs := make([]int, p), make([]int, p)
				at := 0
				for i := p - 1; i >= 0; i-- {
					counts[i], displs[i] = (i*count)%5, at
					if isBig {
						counts[i] = count - i
					}
					at += counts[i] + 2
				}
				recv := make([]float64, at)
				if err := Allgatherv(c, vals(r, 0, counts[r]), recv, counts, displs); err != nil {
					return err
				}
				for i := range p {
					if err := same(fmt.Sprintf("allgatherv block %d on rank %d", i, r), recv[displs[i]:displs[i]+counts[i]], vals(i, 0, counts[i])); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}

func TestAlltoall(t *testing.T) {
	cases(t, bigCounts(t), nil, func(t *testing.T, n, count, _ int, comm string) {
		run(t, n, comm, func(c *mpi.Comm) error {
			count := perRank(count, c.Size())
			p, r := c.Size(), c.Rank()
			send := vals(r, 0, p*count)
			recv := make([]float64, p*count)
			if err := Alltoall(c, send, recv); err != nil {
				return err
			}
			for i := range p {
				if err := same(fmt.Sprintf("alltoall(n=%d, count=%d) block %d on rank %d", p, count, i, r),
					recv[i*count:(i+1)*count], vals(i, r*count, (r+1)*count)); err != nil {
					return err
				}
			}
			return nil
		})
	})
	t.Run("inplace", func(t *testing.T) {
		cases(t, bigCounts(t), nil, func(t *testing.T, n, count, _ int, comm string) {
			run(t, n, comm, func(c *mpi.Comm) error {
				count := perRank(count, c.Size())
				p, r := c.Size(), c.Rank()
				buf := vals(r, 0, p*count)
				if err := Alltoall(c, nil, buf); err != nil {
					return err
				}
				for i := range p {
					if err := same(fmt.Sprintf("alltoall in place(n=%d, count=%d) block %d on rank %d", p, count, i, r),
						buf[i*count:(i+1)*count], vals(i, r*count, (r+1)*count)); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
	t.Run("v-inplace", func(t *testing.T) {
		// Block sizes symmetric in the pair, as the in-place form needs;
		// blocks stored in reverse rank order with gaps.
		cases(t, append([]int{0, 7, 1000}, big(t)...), nil, func(t *testing.T, n, count, _ int, comm string) {
			run(t, n, comm, func(c *mpi.Comm) error {
				isBig, count := count >= bigCount, perRank(count, c.Size())
				p, r := c.Size(), c.Rank()
				size := func(a, b int) int { return (a + b + count) % 4 * (1 + count/100) }
				if isBig {
					size = func(a, b int) int { return count - (a+b)%4 }
				}
				rc, rd := make([]int, p), make([]int, p)
				at := 0
				for i := p - 1; i >= 0; i-- {
					rc[i], rd[i] = size(r, i), at+1
					at += rc[i] + 1
				}
				buf := make([]float64, at)
				for i := range p {
					for j := range rc[i] {
						buf[rd[i]+j] = val(r, i<<20+j)
					}
				}
				if err := Alltoallv(c, nil, nil, nil, buf, rc, rd); err != nil {
					return err
				}
				for i := range p {
					want := make([]float64, rc[i])
					for j := range want {
						want[j] = val(i, r<<20+j)
					}
					if err := same(fmt.Sprintf("alltoallv in place block %d on rank %d", i, r), buf[rd[i]:rd[i]+rc[i]], want); err != nil {
						return err
					}
				}
				for i := range p { // the gaps are untouched
					if buf[rd[i]-1] != 0 {
						return fmt.Errorf("alltoallv in place wrote the gap before block %d on rank %d", i, r)
					}
				}
				return nil
			})
		})
	})
	t.Run("v", func(t *testing.T) {
		cases(t, append([]int{0, 7}, big(t)...), nil, func(t *testing.T, n, count, _ int, comm string) {
			run(t, n, comm, func(c *mpi.Comm) error {
				isBig, count := count >= bigCount, perRank(count, c.Size())
				p, r := c.Size(), c.Rank()
				size := func(from, to int) int { return (from + 2*to + count) % 4 }
				if isBig {
					size = func(from, to int) int { return count - (from+2*to)%4 }
				}
				sc, sd, rc, rd := make([]int, p), make([]int, p), make([]int, p), make([]int, p)
				sat, rat := 0, 0
				for i := range p {
					sc[i], sd[i] = size(r, i), sat
					sat += sc[i]
					rc[i], rd[i] = size(i, r), rat
					rat += rc[i] + 1
				}
				send := make([]float64, sat)
				for i := range p {
					for j := range sc[i] {
						send[sd[i]+j] = val(r, i<<20+j)
					}
				}
				recv := make([]float64, rat)
				if err := Alltoallv(c, send, sc, sd, recv, rc, rd); err != nil {
					return err
				}
				for i := range p {
					want := make([]float64, rc[i])
					for j := range want {
						want[j] = val(i, r<<20+j)
					}
					if err := same(fmt.Sprintf("alltoallv block %d on rank %d", i, r), recv[rd[i]:rd[i]+rc[i]], want); err != nil {
						return err
					}
				}
				return nil
			})
		})
	})
}

func TestBarrier(t *testing.T) {
	// Each rank increments a shared counter before the barrier; after it,
	// every rank must see all increments.
	for _, n := range rankCounts {
		for _, comm := range comms {
			t.Run(fmt.Sprintf("n=%d/comm=%s", n, comm), func(t *testing.T) {
				var arrived [2]chanCounter
				arrived[0], arrived[1] = newChanCounter(), newChanCounter()
				run(t, n, comm, func(c *mpi.Comm) error {
					w := c.Group()[0] % 2 // which half (split) or 0 (world)
					if comm == "world" {
						w = 0
					}
					for round := range 3 {
						arrived[w].add()
						if err := Barrier(c); err != nil {
							return err
						}
						if got := arrived[w].get(); got < (round+1)*c.Size() {
							return fmt.Errorf("barrier round %d on rank %d: %d arrived; want ≥ %d", round, c.Rank(), got, (round+1)*c.Size())
						}
						if err := Barrier(c); err != nil {
							return err
						}
					}
					return nil
				})
			})
		}
	}
}

// chanCounter is a counter safe for concurrent use.
type chanCounter chan int

func newChanCounter() chanCounter { c := make(chanCounter, 1); c <- 0; return c }
func (c chanCounter) add()        { c <- <-c + 1 }
func (c chanCounter) get() int    { v := <-c; c <- v; return v }
