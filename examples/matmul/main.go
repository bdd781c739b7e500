// Command matmul multiplies C = A·B with the rows of A spread over the ranks:
// rank 0 scatters blocks of rows of A (Scatterv: the blocks may differ by
// one row), broadcasts B (Bcast), every rank multiplies its block with gonum,
// and rank 0 gathers the rows of C (Gatherv) and checks them against a
// serial product.
//
//	gorun -n 4 ./examples/matmul -n 600
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"gonum.org/v1/gonum/mat"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

func main() {
	n := flag.Int("n", 500, "rows of A and C")
	k := flag.Int("k", 400, "columns of A, rows of B")
	m := flag.Int("m", 300, "columns of B and C")
	flag.Parse()
	if err := run(*n, *k, *m); err != nil {
		fmt.Fprintln(os.Stderr, "matmul:", err)
		os.Exit(1)
	}
}

func run(n, k, m int) error {
	world, err := mpi.Init(context.Background())
	if err != nil {
		return err
	}
	var a, b *mat.Dense
	if world.Rank() == 0 {
		a, b = random(n, k, 1), random(k, m, 2)
	}
	start := mpi.Wtime()
	c, err := multiply(world, a, b, n, k, m)
	if err != nil {
		return world.Abort(1, "matmul: "+err.Error())
	}
	if world.Rank() == 0 {
		elapsed := mpi.Wtime() - start
		var want mat.Dense
		want.Mul(a, b)
		diff := maxDiff(c, &want)
		fmt.Printf("C = A·B (%d×%d · %d×%d) on %d ranks in %.3f s; largest difference from the serial product %.1e\n",
			n, k, k, m, world.Size(), elapsed, diff)
		if diff > 1e-9 {
			return world.Abort(1, "matmul: the parallel product differs from the serial one")
		}
	}
	return world.Finalize()
}

// multiply returns A·B on rank 0 (nil elsewhere). a (n×k) and b (k×m) are
// read on rank 0 only; every rank passes the same sizes.
func multiply(c *mpi.Comm, a, b *mat.Dense, n, k, m int) (*mat.Dense, error) {
	if n < 1 || k < 1 || m < 1 {
		return nil, fmt.Errorf("sizes must be positive: n=%d k=%d m=%d", n, k, m)
	}
	p, me := c.Size(), c.Rank()
	// Rank r gets rows[r] rows: n/p, one more for the first n%p ranks.
	rows := make([]int, p)
	for r := range p {
		rows[r] = n / p
		if r < n%p {
			rows[r]++
		}
	}
	counts := func(cols int) (cnt, displ []int) {
		off := 0
		for _, r := range rows {
			cnt, displ = append(cnt, r*cols), append(displ, off)
			off += r * cols
		}
		return cnt, displ
	}

	// A's rows go out in blocks; gonum stores a Dense row by row, so a block
	// of rows is one contiguous run of its RawMatrix().Data.
	var aData, bData []float64
	if me == 0 {
		aData, bData = a.RawMatrix().Data, b.RawMatrix().Data
	} else {
		bData = make([]float64, k*m)
	}
	myA := make([]float64, rows[me]*k)
	ac, ad := counts(k)
	if err := collectives.Scatterv(c, aData, ac, ad, myA, 0); err != nil {
		return nil, err
	}
	if err := collectives.Bcast(c, bData, 0); err != nil {
		return nil, err
	}

	myC := make([]float64, rows[me]*m)
	if rows[me] > 0 { // gonum has no empty matrices: a rank may have no rows
		mat.NewDense(rows[me], m, myC).Mul(mat.NewDense(rows[me], k, myA), mat.NewDense(k, m, bData))
	}

	var cData []float64
	if me == 0 {
		cData = make([]float64, n*m)
	}
	cc, cd := counts(m)
	if err := collectives.Gatherv(c, myC, cData, cc, cd, 0); err != nil {
		return nil, err
	}
	if me != 0 {
		return nil, nil
	}
	return mat.NewDense(n, m, cData), nil
}

// random returns an r×c matrix of numbers in [-1, 1), the same for a seed.
func random(r, c int, seed uint64) *mat.Dense {
	rng := rand.New(rand.NewPCG(seed, 0))
	d := make([]float64, r*c)
	for i := range d {
		d[i] = 2*rng.Float64() - 1
	}
	return mat.NewDense(r, c, d)
}

// maxDiff returns the largest |x − y| over the elements of two matrices.
func maxDiff(x, y *mat.Dense) float64 {
	r, c := x.Dims()
	d := 0.0
	for i := range r {
		for j := range c {
			d = max(d, math.Abs(x.At(i, j)-y.At(i, j)))
		}
	}
	return d
}
