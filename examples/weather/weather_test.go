package main

import (
	"image/gif"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// The final fields are bitwise the same for every number of ranks, on a grid
// that none of the block counts divides evenly, and the totals are conserved.
func TestDecompositionInvariance(t *testing.T) {
	o := options{nx: 37, ny: 23, steps: 20, every: 5}
	var ref *result
	for _, n := range []int{1, 2, 3, 4, 6, 8} {
		var got *result
		err := mpitest.Go(t.Context(), n, func(c *mpi.Comm) error {
			res, err := simulate(c, o)
			if c.Rank() == 0 {
				got = res
			}
			return err
		})
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if got.drift >= 1e-12 {
			t.Errorf("n=%d: totals drifted by %.2g; want < 1e-12", n, got.drift)
		}
		if len(got.times) != n {
			t.Errorf("n=%d: %d timings; want one per rank", n, len(got.times))
		}
		if ref == nil {
			ref = got
			moved := 0
			for j := range o.ny {
				for i := range o.nx {
					if t0, _ := initial(i, j, o.nx, o.ny); got.T[j*o.nx+i] != t0 {
						moved++
					}
				}
			}
			if moved < o.nx*o.ny/2 {
				t.Fatalf("only %d of %d cells changed: the test would prove nothing", moved, o.nx*o.ny)
			}
			continue
		}
		for k, name := range []string{"T", "q"} {
			a, b := [][]float64{ref.T, ref.Q}[k], [][]float64{got.T, got.Q}[k]
			for i := range a {
				if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
					t.Fatalf("n=%d: %s[%d] (row %d, column %d) = %v; with 1 rank %v",
						n, name, i, i/o.nx, i%o.nx, b[i], a[i])
				}
			}
		}
	}
}

// The checksum tells apart fields that differ in a single bit, and T from q.
func TestChecksum(t *testing.T) {
	T, Q := []float64{280, 281.5, 0}, []float64{0.01, 0.02, 0.03}
	sum := checksum(T, Q)
	if len(sum) != 64 || sum != checksum(slices.Clone(T), slices.Clone(Q)) {
		t.Fatalf("checksum %q: want 64 hex digits, the same for equal fields", sum)
	}
	nextUp := slices.Clone(T)
	nextUp[1] = math.Nextafter(T[1], math.Inf(1))
	negZero := slices.Clone(T)
	negZero[2] = math.Copysign(0, -1)
	for name, other := range map[string]string{
		"one T value one ulp up": checksum(nextUp, Q),
		"0 turned into -0":       checksum(negZero, Q),
		"T and q swapped":        checksum(Q, T),
	} {
		if other == sum {
			t.Errorf("%s: same checksum %s", name, sum)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct{ n, p int }{{23, 1}, {23, 2}, {23, 4}, {37, 3}, {8, 8}} {
		next := 0
		for k := range tc.p {
			s := split(tc.n, tc.p, k)
			if s.lo != next || s.len() < tc.n/tc.p || s.len() > tc.n/tc.p+1 {
				t.Errorf("split(%d, %d, %d) = %v after %d", tc.n, tc.p, k, s, next)
			}
			next = s.hi
		}
		if next != tc.n {
			t.Errorf("split(%d, %d, …) covers [0, %d)", tc.n, tc.p, next)
		}
	}
}

// wholeDomain returns the block of a single rank, and a function that fills
// the periodic halo columns of a field the way the exchange with itself does.
func wholeDomain(t *testing.T, nx, ny int) (*block, func([]float64)) {
	t.Helper()
	b, err := newBlock(nx, ny, []int{1, 1}, []int{0, 0})
	if err != nil {
		t.Fatal(err)
	}
	return b, func(f []float64) {
		for r := range b.h {
			for k := range halo {
				f[b.at(r, -1-k)] = f[b.at(r, b.w-1-k)]
				f[b.at(r, b.w+k)] = f[b.at(r, k)]
			}
		}
	}
}

// The wind has no divergence: a uniform field stays uniform.
func TestUniformStaysUniform(t *testing.T) {
	b, wrap := wholeDomain(t, 40, 20)
	wd := newWind(b)
	src, dst := make([]float64, b.size()), make([]float64, b.size())
	for i := range src {
		src[i] = 280
	}
	for n := range 10 {
		rate, _ := wd.update(b, float64(n)*3600)
		wrap(src)
		step(b, dst, src, wd, timeStep(rate, b.nx, b.ny), 0, b.h, 0, b.w)
		src, dst = dst, src
	}
	for r := range b.h {
		for c := range b.w {
			if v := src[b.at(r, c)]; math.Abs(v-280) > 1e-12*280 {
				t.Fatalf("cell (%d, %d) = %.17g; want 280", r, c, v)
			}
		}
	}
}

// A blob of humidity in a steady wind of 20 m/s from the south-west moves
// north-east at that speed, and its total is conserved.
func TestBlobMovesWithWind(t *testing.T) {
	b, wrap := wholeDomain(t, 80, 40)
	wd := newWind(b)
	const u, v = 20 / math.Sqrt2, 20 / math.Sqrt2
	for i := range wd.U {
		wd.U[i] = u
	}
	for i := range wd.V {
		if r := i / b.w; r > 0 && r < b.h { // no wind through the walls
			wd.V[i] = v
		}
	}
	dx, dy := lengthX/float64(b.nx), lengthY/float64(b.ny)
	src, dst := make([]float64, b.size()), make([]float64, b.size())
	x0, y0 := 0.3*lengthX, 0.3*lengthY
	for r := range b.h {
		for c := range b.w {
			x, y := (float64(c)+0.5)*dx, (float64(r)+0.5)*dy
			src[b.at(r, c)] = math.Exp(-(sq(x-x0) + sq(y-y0)) / sq(5*dx))
		}
	}
	centre := func(f []float64) (x, y, m float64) {
		for r := range b.h {
			for c := range b.w {
				q := f[b.at(r, c)]
				x, y, m = x+q*(float64(c)+0.5)*dx, y+q*(float64(r)+0.5)*dy, m+q
			}
		}
		return x / m, y / m, m
	}
	_, _, m0 := centre(src)
	dt := timeStep(max(u/dx, v/dy), b.nx, b.ny)
	steps := 20
	for range steps {
		wrap(src)
		step(b, dst, src, wd, dt, 0, b.h, 0, b.w)
		src, dst = dst, src
	}
	x, y, m := centre(src)
	tt := float64(steps) * dt
	if math.Abs(x-(x0+u*tt)) > dx || math.Abs(y-(y0+v*tt)) > dy {
		t.Errorf("blob centre at (%.0f, %.0f) km after %.0f h; want (%.0f, %.0f) km",
			x/1e3, y/1e3, tt/3600, (x0+u*tt)/1e3, (y0+v*tt)/1e3)
	}
	if math.Abs(m/m0-1) > 1e-13 {
		t.Errorf("total changed by %.2g", m/m0-1)
	}
}

// The frames are PNG and GIF files that decode to the expected size.
func TestFrames(t *testing.T) {
	const nx, ny = 37, 23
	s := snapshot{T: make([]float64, nx*ny), Q: make([]float64, nx*ny), nx: nx, ny: ny,
		dims: []int{2, 3}, day: 1.5, step: 120, ranks: 6, maxWindMPS: 31}
	for j := range ny {
		for i := range nx {
			s.T[j*nx+i], s.Q[j*nx+i] = initial(i, j, nx, ny)
		}
	}
	dir := t.TempDir()
	m, err := newMovie(dir)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := m.add(render(s)); err != nil {
			t.Fatal(err)
		}
	}
	name, err := m.finish()
	if err != nil {
		t.Fatal(err)
	}
	l := layoutFrame(nx, ny)
	f, err := os.Open(filepath.Join(dir, "frame-0002.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != l.width || b.Dy() != l.height {
		t.Errorf("PNG frame is %v; want %d×%d", b, l.width, l.height)
	}
	g, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	anim, err := gif.DecodeAll(g)
	if err != nil {
		t.Fatal(err)
	}
	if len(anim.Image) != 3 || anim.Config.Width != l.width || anim.Config.Height != l.height {
		t.Errorf("GIF has %d frames of %d×%d; want 3 of %d×%d",
			len(anim.Image), anim.Config.Width, anim.Config.Height, l.width, l.height)
	}
}

// Every character the captions use has a glyph of 7 rows of 5 pixels.
func TestFont(t *testing.T) {
	for ch, g := range font {
		for _, row := range g {
			if len(row) != 5 {
				t.Errorf("glyph %q has a row %q", ch, row)
			}
		}
	}
	for _, ch := range "GORUN WEATHER DAY STEP WIND M/S TEMPERATURE (°C) CLOUD RANKS, BLOCKS 0123456789-.X" {
		if _, ok := font[ch]; !ok && ch != ' ' {
			t.Errorf("no glyph for %q", ch)
		}
	}
}
