package collectives

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// allreduceFn runs one allreduce of in into out on c.
type allreduceFn[T mpi.Numeric] func(c *mpi.Comm, in, out []T, op Op[T]) error

// testAllreduceOps checks fn against the serial reduction for every rank
// count, element count, op and communicator.
func testAllreduceOps[T mpi.Numeric](t *testing.T, ops []opCase[T], counts []int, fn allreduceFn[T]) {
	cases(t, counts, names(ops), func(t *testing.T, n, count, o int, comm string) {
		oc := ops[o]
		run(t, n, comm, func(c *mpi.Comm) error {
			in := input(oc.gen, c.Rank(), count)
			out := make([]T, count)
			if err := fn(c, in, out, oc.op); err != nil {
				return err
			}
			if err := same("in unchanged", in, input(oc.gen, c.Rank(), count)); err != nil {
				return err
			}
			return same(fmt.Sprintf("allreduce(n=%d, count=%d)", c.Size(), count), out, serial(oc.gen, oc.op, 0, c.Size(), count))
		})
	})
}

func publicAllreduce[T mpi.Numeric](c *mpi.Comm, in, out []T, op Op[T]) error {
	return Allreduce(c, in, out, op)
}

func TestAllreduce(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testAllreduceOps(t, floatCases(), elemCounts, publicAllreduce[float64]) })
	t.Run("int32", func(t *testing.T) { testAllreduceOps(t, intCases(), elemCounts, publicAllreduce[int32]) })
	t.Run("noncommutative", func(t *testing.T) { testAllreduceOps(t, affineCases(), elemCounts, publicAllreduce[uint64]) })
	if !testing.Short() {
		t.Run("big", func(t *testing.T) { testAllreduceOps(t, floatCases()[:1], big(t), publicAllreduce[float64]) })
		t.Run("big-noncommutative", func(t *testing.T) {
			testAllreduceOps(t, affineCases(), []int{1 << 14}, publicAllreduce[uint64])
		})
	}
	t.Run("inplace", func(t *testing.T) {
		testAllreduceOps(t, floatCases()[:1], []int{7, 10000}, func(c *mpi.Comm, in, out []float64, op Op[float64]) error {
			copy(out, in)
			return Allreduce(c, nil, out, op)
		})
	})
	t.Run("named-complex", func(t *testing.T) {
		type celsius float64
		testAllreduceOps(t, []opCase[celsius]{{"sum", Sum[celsius], func(r, i int) celsius { return celsius(r - i) }}},
			[]int{7}, publicAllreduce[celsius])
		testAllreduceOps(t, []opCase[complex128]{{"prod", Prod[complex128], func(r, i int) complex128 { return complex(1, float64((r+i)%2)) }}},
			[]int{7}, publicAllreduce[complex128])
	})
}

// algo adapts an internal allreduce algorithm to an allreduceFn.
func algo[T mpi.Numeric](f func(k call, buf []T, op Op[T]) error) allreduceFn[T] {
	return func(c *mpi.Comm, in, out []T, op Op[T]) error {
		copy(out, in)
		if c.Size() == 1 {
			return nil
		}
		return f(newCall(c), out, op)
	}
}

// nodeAlgo runs allreduceNode over fake hosts: host(rank) groups the ranks;
// withShm gives the node communicators their shared-memory regions, and
// sliced runs allreduceNodeSliced where it applies (uniform hosts).
func nodeAlgo[T mpi.Numeric](host func(r int) int, commutative, withShm, sliced bool) allreduceFn[T] {
	return func(c *mpi.Comm, in, out []T, op Op[T]) error {
		copy(out, in)
		if c.Size() == 1 {
			return nil
		}
		h, err := newHierarchy(c, func() (*mpi.Comm, error) { return c.Split(host(c.Rank()), c.Rank()) })
		if err != nil {
			return err
		}
		if h.node == nil { // one fake host
			return allreduceFlat(newCall(c), out, op, commutative)
		}
		defer h.node.Free()
		if h.leaders != nil {
			defer h.leaders.Free()
		}
		if h.cross != nil {
			defer h.cross.Free()
		}
		var sn *shmColl
		if withShm {
			if sn = shmOf(h.node); sn == nil && h.node.Size() > 1 {
				return errors.New("node communicator without a shared-memory region")
			}
		}
		if sliced && h.uniform && sn != nil && len(out) >= sn.p {
			return allreduceNodeSliced(newCall(c), h, out, op, commutative, sn)
		}
		return allreduceNode(newCall(c), h, out, op, commutative, sn)
	}
}

func TestAllreduceAlgorithms(t *testing.T) {
	counts := []int{0, 1, 7, 1000, 4097}
	ordered := func(t *testing.T, f func(k call, buf []float64, op Op[float64]) error, g func(k call, buf []uint64, op Op[uint64]) error) {
		testAllreduceOps(t, floatCases(), counts, algo(f))
		testAllreduceOps(t, affineCases(), counts, algo(g))
	}
	t.Run("rd", func(t *testing.T) { ordered(t, allreduceRD[float64], allreduceRD[uint64]) })
	t.Run("rabenseifner", func(t *testing.T) { ordered(t, allreduceRabenseifner[float64], allreduceRabenseifner[uint64]) })
	t.Run("rabenseifner-from-send", func(t *testing.T) {
		// Commutative ops only; rank counts that are not powers of two
		// take the in-place form, as the dispatcher does.
		from := func(c *mpi.Comm, in, out []float64, op Op[float64]) error {
			if p := c.Size(); p > 1 && p == pof2Below(p) {
				return allreduceRabenseifnerFrom(newCall(c), in, out, op)
			}
			return algo(allreduceRabenseifner[float64])(c, in, out, op)
		}
		testAllreduceOps(t, floatCases(), counts, from)
	})
	t.Run("ring", func(t *testing.T) {
		testAllreduceOps(t, floatCases(), counts, algo(allreduceRing[float64]))
		testAllreduceOps(t, intCases()[3:], counts, algo(allreduceRing[int32]))
	})
	for _, withShm := range []bool{false, true} {
		t.Run(fmt.Sprintf("node-contiguous/shm=%v", withShm), func(t *testing.T) {
			host := func(r int) int { return r / 3 }
			testAllreduceOps(t, floatCases(), counts, nodeAlgo[float64](host, true, withShm, false))
			testAllreduceOps(t, affineCases(), counts, nodeAlgo[uint64](host, false, withShm, false))
		})
		t.Run(fmt.Sprintf("node-strided/shm=%v", withShm), func(t *testing.T) {
			testAllreduceOps(t, floatCases(), counts, nodeAlgo[float64](func(r int) int { return r % 2 }, true, withShm, false))
		})
	}
	// Two ranks per fake host (uniform for even rank counts; the others
	// fall back to allreduceNode), contiguous and strided.
	t.Run("node-sliced-contiguous", func(t *testing.T) {
		host := func(r int) int { return r / 2 }
		testAllreduceOps(t, floatCases(), counts, nodeAlgo[float64](host, true, true, true))
		testAllreduceOps(t, affineCases(), counts, nodeAlgo[uint64](host, false, true, true))
	})
	t.Run("node-sliced-strided", func(t *testing.T) {
		host := func(r int) int { return r % 2 }
		testAllreduceOps(t, floatCases(), counts, nodeAlgo[float64](host, true, true, true))
	})
}

func TestHierarchyFlags(t *testing.T) {
	for _, tc := range []struct {
		name            string
		host            func(r int) int
		useful, ordered bool
	}{
		{"blocks", func(r int) int { return r / 3 }, true, true},
		{"strided", func(r int) int { return r % 2 }, true, false},
		{"one-per-host", func(r int) int { return r }, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run(t, 7, "world", func(c *mpi.Comm) error {
				h, err := newHierarchy(c, func() (*mpi.Comm, error) { return c.Split(tc.host(c.Rank()), c.Rank()) })
				if err != nil {
					return err
				}
				if h.useful != tc.useful || h.ordered != tc.ordered {
					return fmt.Errorf("hierarchy: useful %v, ordered %v; want %v, %v", h.useful, h.ordered, tc.useful, tc.ordered)
				}
				return nil
			})
		})
	}
	t.Run("off", func(t *testing.T) {
		// GORUN_COLL_HIERARCHY=off: hosts that would make the hierarchy
		// useful are ignored, without a split.
		hierarchyOff = true
		defer func() { hierarchyOff = false }()
		run(t, 7, "world", func(c *mpi.Comm) error {
			split := func() (*mpi.Comm, error) { return nil, fmt.Errorf("split called although %s=off", EnvHierarchy) }
			h, err := newHierarchy(c, split)
			if err != nil {
				return err
			}
			if h.useful || h.node != nil || h.leaders != nil {
				return fmt.Errorf("hierarchy with %s=off: %+v; want one host", EnvHierarchy, h)
			}
			return nil
		})
	})
	t.Run("one-host", func(t *testing.T) {
		run(t, 4, "world", func(c *mpi.Comm) error {
			h, err := hierarchyOf(c)
			if err != nil {
				return err
			}
			if h.useful {
				return fmt.Errorf("in-process ranks: hierarchy useful")
			}
			if h2, _ := hierarchyOf(c); h2 != h {
				return fmt.Errorf("hierarchy not cached")
			}
			return nil
		})
	})
}

// testRootedReduce checks Reduce against the serial reduction for every
// rank count, element count, root, op and communicator.
func testReduceOps[T mpi.Numeric](t *testing.T, ops []opCase[T], counts []int, inPlace bool,
	fn func(c *mpi.Comm, send, recv []T, op Op[T], root int) error) {
	rootCases(t, counts, names(ops), func(t *testing.T, n, count, root, o int, comm string) {
		oc := ops[o]
		{
			{
				run(t, n, comm, func(c *mpi.Comm) error {
					root := root % c.Size()
					in := input(oc.gen, c.Rank(), count)
					var out []T
					send := in
					if c.Rank() == root {
						out = make([]T, count)
						if inPlace {
							copy(out, in)
							send = nil
						}
					}
					if err := fn(c, send, out, oc.op, root); err != nil {
						return err
					}
					if c.Rank() != root {
						return nil
					}
					return same(fmt.Sprintf("reduce(n=%d, count=%d, root=%d)", c.Size(), count, root), out, serial(oc.gen, oc.op, 0, c.Size(), count))
				})
			}
		}
	})
}

// reduceRab adapts reduceRabenseifner to the signature of Reduce.
func reduceRab[T mpi.Numeric](c *mpi.Comm, send, recv []T, op Op[T], root int) error {
	in := send
	if send == nil {
		in = recv
	}
	if c.Size() == 1 {
		copy(recv, in)
		return nil
	}
	return reduceRabenseifner(newCall(c), in, recv, op, root)
}

func TestReduce(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testReduceOps(t, floatCases(), elemCounts, false, Reduce[float64]) })
	// 5000 float64s: 40 KiB, Rabenseifner's algorithm for the dispatcher
	t.Run("long", func(t *testing.T) { testReduceOps(t, floatCases(), []int{5000}, false, Reduce[float64]) })
	t.Run("long-inplace", func(t *testing.T) { testReduceOps(t, floatCases()[:1], []int{5000}, true, Reduce[float64]) })
	t.Run("long-noncommutative", func(t *testing.T) { testReduceOps(t, affineCases(), []int{5000}, false, Reduce[uint64]) })
	t.Run("big", func(t *testing.T) {
		testReduceOps(t, floatCases()[:1], big(t), false, Reduce[float64])
		testReduceOps(t, affineCases(), big(t), false, Reduce[uint64])
	})
	t.Run("rabenseifner", func(t *testing.T) {
		counts := []int{0, 1, 7, 1000, 4097}
		testReduceOps(t, floatCases()[:2], counts, false, reduceRab[float64])
		testReduceOps(t, affineCases(), counts, false, reduceRab[uint64])
		testReduceOps(t, affineCases(), []int{7}, true, reduceRab[uint64])
	})
	t.Run("int32", func(t *testing.T) { testReduceOps(t, intCases(), []int{0, 7}, false, Reduce[int32]) })
	t.Run("noncommutative", func(t *testing.T) { testReduceOps(t, affineCases(), elemCounts, false, Reduce[uint64]) })
	t.Run("inplace", func(t *testing.T) { testReduceOps(t, affineCases(), []int{7}, true, Reduce[uint64]) })
}

func TestScan(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		for _, inPlace := range []bool{false, true} {
			name := map[bool]string{false: "scan", true: "exscan"}[exclusive]
			if inPlace {
				name += "-inplace"
			}
			t.Run(name, func(t *testing.T) {
				f := Scan[float64]
				g := Scan[uint64]
				if exclusive {
					f, g = Exscan[float64], Exscan[uint64]
				}
				counts := elemCounts
				if inPlace {
					counts = []int{7}
				}
				testScanOps(t, floatCases(), counts, exclusive, inPlace, f)
				testScanOps(t, affineCases(), counts, exclusive, inPlace, g)
				if !inPlace {
					testScanOps(t, floatCases()[:1], big(t), exclusive, false, f)
				}
			})
		}
	}
}

func testScanOps[T mpi.Numeric](t *testing.T, ops []opCase[T], counts []int, exclusive, inPlace bool,
	fn func(c *mpi.Comm, send, recv []T, op Op[T]) error) {
	cases(t, counts, names(ops), func(t *testing.T, n, count, o int, comm string) {
		oc := ops[o]
		{
			{
				run(t, n, comm, func(c *mpi.Comm) error {
					r := c.Rank()
					in := input(oc.gen, r, count)
					out := make([]T, count)
					for i := range out {
						out[i] = 42
					}
					send := in
					if inPlace {
						copy(out, in)
						send = nil
					}
					if err := fn(c, send, out, oc.op); err != nil {
						return err
					}
					var want []T
					switch {
					case !exclusive:
						want = serial(oc.gen, oc.op, 0, r+1, count)
					case r > 0:
						want = serial(oc.gen, oc.op, 0, r, count)
					case inPlace:
						want = in
					default:
						want = make([]T, count)
						for i := range want {
							want[i] = 42
						}
					}
					return same(fmt.Sprintf("scan(n=%d, count=%d) on rank %d", c.Size(), count, r), out, want)
				})
			}
		}
	})
}

func TestReduceScatter(t *testing.T) {
	test := func(t *testing.T, ops []opCase[float64], counts []int, direct string) {
		cases(t, counts, names(ops), func(t *testing.T, n, count, o int, comm string) {
			oc := ops[o]
			{
				{
					run(t, n, comm, func(c *mpi.Comm) error {
						p, r := c.Size(), c.Rank()
						counts := make([]int, p)
						for i := range p {
							counts[i] = blockStart(count, p, i+1) - blockStart(count, p, i)
						}
						lo := blockStart(count, p, r)
						in := input(oc.gen, r, count)
						out := make([]float64, counts[r])
						var err error
						switch {
						case direct == "inplace":
							buf := append([]float64(nil), in...)
							err = ReduceScatter(c, nil, buf, counts, oc.op)
							copy(out, buf)
						case direct == "" || p == 1:
							err = ReduceScatter(c, in, out, counts, oc.op)
						default:
							_, displs := uniformLayout(0, p)
							for i := range p {
								displs[i] = blockStart(count, p, i)
							}
							k := newCall(c)
							if direct == "ring" {
								work := append([]float64(nil), in...)
								err = reduceScatterRing(k, work, oc.op, func(i int) (int, int) { return displs[i], displs[i] + counts[i] })
								copy(out, work[lo:])
							} else {
								err = reduceScatterReduce(k, in, out, counts, displs, oc.op)
							}
						}
						if err != nil {
							return err
						}
						want := serial(oc.gen, oc.op, 0, p, count)[lo : lo+counts[r]]
						return same(fmt.Sprintf("reduce scatter(n=%d, count=%d) on rank %d", p, count, r), out, want)
					})
				}
			}
		})
	}
	t.Run("dispatch", func(t *testing.T) { test(t, floatCases(), elemCounts, "") })
	t.Run("big", func(t *testing.T) { test(t, floatCases()[:1], big(t), "") })
	t.Run("inplace", func(t *testing.T) { test(t, floatCases(), elemCounts, "inplace") })
	t.Run("ring", func(t *testing.T) { test(t, floatCases()[:2], elemCounts, "ring") })
	t.Run("reduce", func(t *testing.T) { test(t, floatCases()[:2], elemCounts, "reduce") })
	t.Run("noncommutative", func(t *testing.T) {
		// affine on uint64 through the same path as a user op; odd ranks
		// in place, even ones not (each rank chooses its form)
		cases(t, append([]int{0, 7, 1000}, big(t)...), []string{"affine"}, func(t *testing.T, n, count, _ int, comm string) {
			oc := affineCases()[0]
			run(t, n, comm, func(c *mpi.Comm) error {
				p, r := c.Size(), c.Rank()
				counts := make([]int, p)
				for i := range p {
					counts[i] = blockStart(count, p, i+1) - blockStart(count, p, i)
				}
				out := make([]uint64, counts[r])
				var err error
				if r%2 == 1 {
					buf := input(oc.gen, r, count)
					err = ReduceScatter(c, nil, buf, counts, oc.op)
					copy(out, buf)
				} else {
					err = ReduceScatter(c, input(oc.gen, r, count), out, counts, oc.op)
				}
				if err != nil {
					return err
				}
				lo := blockStart(count, p, r)
				return same("reduce scatter", out, serial(oc.gen, oc.op, 0, p, count)[lo:lo+counts[r]])
			})
		})
	})
}

func TestCommutative(t *testing.T) {
	type celsius float64
	for name, got := range map[string]bool{
		"Sum[float64]": commutative(Sum[float64]),
		"Max[int8]":    commutative(Max[int8]),
		"BXor[uint]":   commutative(BXor[uint]),
		"LAnd[int]":    commutative(Op[int](LAnd[int])),
		"Sum[celsius]": commutative(Sum[celsius]),
	} {
		if !got {
			t.Errorf("commutative(%s) = false; want true", name)
		}
	}
	if commutative(affine) || commutative(Op[float64](func(a, b []float64) { Sum(a, b) })) || commutative[float64](nil) {
		t.Error("commutative(user op) = true; want false")
	}
}

func TestLoc(t *testing.T) {
	gen := func(r, i int) Loc[float32] { return Loc[float32]{Val: float32((r*7+i*3)%5) - 2.5, Idx: int32(r)} }
	genI := func(r, i int) Loc[int64] { return Loc[int64]{Val: int64((r*7+i*3)%5) - 1<<40, Idx: int32(r * 10)} }
	serialLoc := func(count, p int, op LocOp[float32]) []Loc[float32] {
		acc := make([]Loc[float32], count)
		for i := range acc {
			acc[i] = gen(0, i)
		}
		for r := 1; r < p; r++ {
			x := make([]Loc[float32], count)
			for i := range x {
				x[i] = gen(r, i)
			}
			op(x, acc)
			acc = x
		}
		return acc
	}
	locOps := []LocOp[float32]{MinLoc[float32], MaxLoc[float32]}
	{
		rootCases(t, []int{0, 7}, []string{"minloc", "maxloc"}, func(t *testing.T, n, count, root, o int, comm string) {
			oc := struct{ op LocOp[float32] }{locOps[o]}
			{
				run(t, n, comm, func(c *mpi.Comm) error {
					root := root % c.Size()
					in := make([]Loc[float32], count)
					for i := range in {
						in[i] = gen(c.Rank(), i)
					}
					want := serialLoc(count, c.Size(), oc.op)
					out := make([]Loc[float32], count)
					if err := AllreduceLoc(c, in, out, oc.op); err != nil {
						return err
					}
					if err := same("allreduce loc", out, want); err != nil {
						return err
					}
					out2 := make([]Loc[float32], count)
					if err := ReduceLoc(c, in, out2, oc.op, root); err != nil {
						return err
					}
					if c.Rank() == root {
						return same("reduce loc", out2, want)
					}
					return nil
				})
			}
		})
	}
	t.Run("int64", func(t *testing.T) {
		run(t, 5, "world", func(c *mpi.Comm) error {
			in := []Loc[int64]{genI(c.Rank(), 0), genI(c.Rank(), 1)}
			if err := AllreduceLoc(c, nil, in, MaxLoc[int64]); err != nil {
				return err
			}
			// values (r*7+i*3)%5 − 2⁴⁰ over r = 0…4: maximum 4 first at r=2 (i=0), r=... (i=1)
			want := []Loc[int64]{{4 - 1<<40, 20}, {4 - 1<<40, 30}}
			return same("allreduce loc int64", in, want)
		})
	})
}
