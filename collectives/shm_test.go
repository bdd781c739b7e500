package collectives

import (
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// TestShmRegion: communicators of goroutine ranks (which share memory) get
// a region on their first blocking collective, split ones included, and
// GORUN_COLL_SHM=off (shmOff) leaves them without.
func TestShmRegion(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("off=%v", off), func(t *testing.T) {
			withShmOff(t, off)
			run(t, 4, "split", func(c *mpi.Comm) error {
				if err := Barrier(c); err != nil {
					return err
				}
				s := shmOf(c)
				if got := s != nil; got == off {
					return fmt.Errorf("region present = %v with shmOff = %v", got, off)
				}
				// Goroutine ranks read their own process: always allowed.
				if s != nil && runtime.GOOS == "linux" && !s.cma {
					return errors.New("cross-memory reads were not enabled")
				}
				return nil
			})
		})
	}
}

// withShmOff sets shmOff for the rest of the test.
func withShmOff(t *testing.T, off bool) {
	was := shmOff.Load()
	shmOff.Store(off)
	t.Cleanup(func() { shmOff.Store(was) })
}

// TestPointToPointAlgorithms runs the dispatcher-level tests again with the
// shared-memory fast path off, so that the small-message point-to-point
// algorithms stay tested on one host too (they serve communicators that
// span hosts, and the non-blocking forms).
func TestPointToPointAlgorithms(t *testing.T) {
	withShmOff(t, true)
	for name, test := range map[string]func(*testing.T){
		"barrier": TestBarrier, "bcast": TestBcast, "gather": TestGather,
		"scatter": TestScatter, "allgather": TestAllgather, "alltoall": TestAlltoall,
		"allreduce": TestAllreduce, "reduce": TestReduce, "mismatch": TestMismatch,
	} {
		t.Run(name, test)
	}
}

// TestShmMismatch: disagreements the region's descriptors reveal.
func TestShmMismatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		fn   func(c *mpi.Comm) error
	}{
		// Rank 2 takes rank 1 for the root, the others rank 0.
		{"bcast/roots", 3, func(c *mpi.Comm) error {
			return Bcast(c, make([]int, 3), []int{0, 0, 1}[c.Rank()])
		}},
		{"reduce/roots", 3, func(c *mpi.Comm) error {
			root := []int{0, 0, 1}[c.Rank()]
			return Reduce(c, make([]int, 3), make([]int, 3), Sum, root)
		}},
		{"scatter/roots", 3, func(c *mpi.Comm) error {
			root := []int{0, 0, 1}[c.Rank()]
			return Scatter(c, make([]int, 6), make([]int, 2), root)
		}},
		// Different operations in the same call.
		{"barrier-vs-allreduce", 2, func(c *mpi.Comm) error {
			if c.Rank() == 0 {
				return Barrier(c)
			}
			return Allreduce(c, nil, make([]int, 1), Sum)
		}},
		// Counts that differ on the cross-memory path are caught before
		// any rank reads past the end of another's buffer.
		{"bcast/cma-count", 3, func(c *mpi.Comm) error {
			n := 2000
			if c.Rank() == 1 {
				n = 3000
			}
			return Bcast(c, make([]float64, n), 0)
		}},
		{"alltoall/cma-count", 3, func(c *mpi.Comm) error {
			b := 4000 + 1000*(c.Rank()%2)
			return Alltoall(c, make([]float32, 3*b), make([]float32, 3*b))
		}},
		// One rank's count sends it to the point-to-point algorithm.
		{"alltoall/path", 2, func(c *mpi.Comm) error {
			b := []int{1, shmSlotMax}[c.Rank()]
			return Alltoall(c, make([]byte, 2*b), make([]byte, 2*b))
		}},
		{"allgather/path", 3, func(c *mpi.Comm) error {
			b := []int{1, 1, shmSlotMax + 1}[c.Rank()]
			return Allgather(c, make([]byte, b), make([]byte, 3*b))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withShmOff(t, false)
			if err := goErr(t, tc.n, tc.fn); !errors.Is(err, ErrMismatch) {
				t.Errorf("err = %v; want ErrMismatch", err)
			}
		})
	}
}

// TestShmRunAhead: roots of broadcasts and non-roots of reductions do not
// wait, so a rank may run several calls ahead of a slow one; the region's
// sets (shmSets) must not be overwritten while a slow rank still reads
// them. Rank 2 does extra work between calls to fall behind.
func TestShmRunAhead(t *testing.T) {
	withShmOff(t, false)
	mpitest.Run(t, 3, func(c *mpi.Comm) error {
		const calls = 400
		buf := make([]int64, 100)
		sum := make([]int64, 100)
		sink := 0
		for i := range calls {
			if c.Rank() == 2 {
				for k := range 2000 * (i % 7) {
					sink += k
				}
			}
			if c.Rank() == 0 {
				for k := range buf {
					buf[k] = int64(i*1000 + k)
				}
			}
			if err := Bcast(c, buf, 0); err != nil {
				return err
			}
			for k := range buf {
				if buf[k] != int64(i*1000+k) {
					return fmt.Errorf("call %d: bcast element %d = %d, want %d", i, k, buf[k], i*1000+k)
				}
			}
			mine := []int64{int64(c.Rank() + i)}
			if err := Reduce(c, mine, sum[:1], Sum, 1); err != nil {
				return err
			}
			if want := int64(3*i + 3); c.Rank() == 1 && sum[0] != want {
				return fmt.Errorf("call %d: reduce = %d, want %d", i, sum[0], want)
			}
		}
		_ = sink
		return nil
	})
}

// TestShmAbort: ranks waiting in the region for a rank that never comes
// fail with ErrAborted once the job aborts, instead of waiting forever.
func TestShmAbort(t *testing.T) {
	withShmOff(t, false)
	err := goErr(t, 3, func(c *mpi.Comm) error {
		if err := Barrier(c); err != nil { // creates the region
			return err
		}
		if c.Rank() == 2 {
			return errors.New("rank 2 gives up") // abortOnError aborts the job
		}
		return Barrier(c)
	})
	if !errors.Is(err, mpi.ErrAborted) {
		t.Errorf("err = %v; want the waiting ranks to fail with ErrAborted", err)
	}
}

// TestShmFreed: after Free, the collectives of a communicator with a
// region fail with mpi.ErrFreed, as the point-to-point ones do.
func TestShmFreed(t *testing.T) {
	withShmOff(t, false)
	mpitest.Run(t, 2, func(w *mpi.Comm) error {
		d, err := w.Dup()
		if err != nil {
			return err
		}
		if err := Barrier(d); err != nil { // creates the region
			return err
		}
		if shmOf(d) == nil {
			return errors.New("no region")
		}
		if err := d.Free(); err != nil {
			return err
		}
		if err := Barrier(d); !errors.Is(err, mpi.ErrFreed) {
			return fmt.Errorf("barrier on a freed communicator: %v; want ErrFreed", err)
		}
		if err := Allreduce(d, nil, []int{1}, Sum); !errors.Is(err, mpi.ErrFreed) {
			return fmt.Errorf("allreduce on a freed communicator: %v; want ErrFreed", err)
		}
		return nil
	})
}

// TestBarrierNode: the host-aware barrier over fake hosts (contiguous and
// strided) lets no rank leave before every rank has arrived, round after
// round, and ends with the leaders' failure instead of hanging when the
// job aborts.
func TestBarrierNode(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("shmOff=%v", off), func(t *testing.T) { testBarrierNode(t, off) })
	}
}

// testBarrierNode runs TestBarrierNode's cases with the regions on, or off
// (the hosts then do their part with messages).
func testBarrierNode(t *testing.T, off bool) {
	withShmOff(t, off)
	for _, layout := range []struct {
		name string
		host func(r int) int
	}{{"contiguous", func(r int) int { return r / 3 }}, {"strided", func(r int) int { return r % 2 }}} {
		for _, n := range []int{4, 5, 7, 8} {
			t.Run(fmt.Sprintf("%s/n=%d", layout.name, n), func(t *testing.T) {
				arrived := newChanCounter()
				mpitest.Run(t, n, func(c *mpi.Comm) error {
					h, err := fakeHierarchy(c, layout.host)
					if err != nil {
						return err
					}
					sn := shmOf(h.node) // nil on a host of one rank
					if sn == nil && h.node.Size() > 1 && !off {
						return errors.New("node communicator without a region")
					}
					for round := range 5 {
						arrived.add()
						if err := barrierNode(newCall(c), h, sn); err != nil {
							return err
						}
						if got := arrived.get(); got < (round+1)*n {
							return fmt.Errorf("round %d: rank %d left with %d arrivals; want ≥ %d", round, c.Rank(), got, (round+1)*n)
						}
						if err := barrierNode(newCall(c), h, sn); err != nil {
							return err
						}
					}
					return nil
				})
			})
		}
	}
}

// TestBcastNode: the host-aware broadcast over fake hosts, from every
// root, for sizes that take each path on the hosts (inline, slot,
// cross-memory, and with the regions off, messages) and among the leaders
// (binomial, scatter + allgather).
func TestBcastNode(t *testing.T) {
	for _, off := range []bool{false, true} {
		for _, layout := range []struct {
			name string
			host func(r int) int
		}{{"contiguous", func(r int) int { return r / 3 }}, {"strided", func(r int) int { return r % 3 }}} {
			for _, n := range []int{4, 7, 8} {
				t.Run(fmt.Sprintf("shmOff=%v/%s/n=%d", off, layout.name, n), func(t *testing.T) {
					withShmOff(t, off)
					mpitest.Run(t, n, func(c *mpi.Comm) error {
						h, err := fakeHierarchy(c, layout.host)
						if err != nil {
							return err
						}
						sn := shmOf(h.node)
						for _, count := range []int{0, 1, 7, 1000, 20000, 70000} {
							for root := range n {
								buf := make([]float64, count)
								if c.Rank() == root {
									for i := range buf {
										buf[i] = float64(root*1000003 + i)
									}
								}
								if err := bcastNode(newCall(c), h, buf, root, sn); err != nil {
									return err
								}
								for i, x := range buf {
									if want := float64(root*1000003 + i); x != want {
										return fmt.Errorf("count %d, root %d: element %d = %v, want %v", count, root, i, x, want)
									}
								}
							}
						}
						return nil
					})
				})
			}
		}
	}
}

// fakeHierarchy builds c's hierarchy with hosts made up by host(rank).
func fakeHierarchy(c *mpi.Comm, host func(r int) int) (*hierarchy, error) {
	h, err := newHierarchy(c, func() (*mpi.Comm, error) { return c.Split(host(c.Rank()), c.Rank()) })
	if err == nil && !h.useful {
		err = errors.New("fake hosts gave no hierarchy")
	}
	return h, err
}
