package main

import (
	"fmt"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// halo is the width of the ghost border around each rank's block: the flux
// through a face reads two cells on each side of it (see flux in physics.go).
const halo = 2

// A span is a half-open range [lo, hi) of global indices.
type span struct{ lo, hi int }

func (s span) len() int { return s.hi - s.lo }

// split cuts n cells into p nearly equal blocks and returns block k: the first
// n%p blocks are one cell longer, so any n and p work, even or not.
func split(n, p, k int) span {
	base, extra := n/p, n%p
	lo := k*base + min(k, extra)
	hi := lo + base
	if k < extra {
		hi++
	}
	return span{lo, hi}
}

// A block is one rank's part of the global nx × ny grid, with its halo.
// Fields are stored row by row, row 0 in the south; local cell (r, c), with r
// and c from -halo to h+halo-1 and w+halo-1, is field[b.at(r, c)].
//
// A block is plain data: the physics runs on it without knowing about MPI.
type block struct {
	nx, ny     int  // global grid: columns (west to east), rows (south to north)
	rows, cols span // the global rows and columns this block owns
	w, h       int  // cols.len(), rows.len()
	stride     int  // w + 2·halo, the length of one stored row

	// rowOff[r+halo] is the offset of local row r in a field. Rows beyond the
	// northern and southern walls are mapped to the nearest row inside the
	// domain, so a stencil reaching past a wall reads the edge cell again:
	// the gradient across the wall is zero and nothing crosses it.
	rowOff []int
}

// newBlock describes the block of a rank at coords (row block, column block) in
// a dims[0] × dims[1] grid of ranks.
func newBlock(nx, ny int, dims, coords []int) (*block, error) {
	b := &block{
		nx: nx, ny: ny,
		rows: split(ny, dims[0], coords[0]),
		cols: split(nx, dims[1], coords[1]),
	}
	b.w, b.h = b.cols.len(), b.rows.len()
	if b.w < halo || b.h < halo {
		return nil, fmt.Errorf("grid %d×%d is too small for %d×%d ranks: a block needs at least %d rows and columns",
			nx, ny, dims[1], dims[0], halo)
	}
	b.stride = b.w + 2*halo
	b.rowOff = make([]int, b.h+2*halo)
	for r := -halo; r < b.h+halo; r++ {
		j := min(max(b.rows.lo+r, 0), ny-1) // global row, clamped to the walls
		b.rowOff[r+halo] = (j - b.rows.lo + halo) * b.stride
	}
	return b, nil
}

// at returns the offset of local cell (r, c) in a field.
func (b *block) at(r, c int) int { return b.rowOff[r+halo] + c + halo }

// size is the length of one field of the block, halo included.
func (b *block) size() int { return (b.h + 2*halo) * b.stride }

// layout returns the grid of ranks for size ranks and the block of each
// rank, in rank order (a Cartesian communicator numbers ranks row-major).
func layout(nx, ny, size int) (dims []int, blocks []*block, err error) {
	dims, err = mpi.DimsCreate(size, []int{0, 0})
	if err != nil {
		return nil, nil, err
	}
	// DimsCreate lists the larger count first. The domain is wider than it is
	// tall, so give the larger count to the east–west dimension: squarer
	// blocks have fewer halo cells for their area.
	if nx > ny && dims[0] > dims[1] {
		dims[0], dims[1] = dims[1], dims[0]
	}
	for r := range size {
		b, err := newBlock(nx, ny, dims, []int{r / dims[1], r % dims[1]})
		if err != nil {
			return nil, nil, err
		}
		blocks = append(blocks, b)
	}
	return dims, blocks, nil
}

// interior returns the block's rectangle [r0, r1) × [c0, c1) of cells whose
// stencil stays inside the block: they can be updated before the halos arrive.
func (b *block) interior() (r0, r1, c0, c1 int) {
	r0, c0 = min(halo, b.h), min(halo, b.w)
	r1, c1 = max(b.h-halo, r0), max(b.w-halo, c0)
	return r0, r1, c0, c1
}

// rim returns the rectangles that, with interior, cover the block exactly once:
// the cells that need the halos.
func (b *block) rim() [4][4]int {
	r0, r1, c0, c1 := b.interior()
	return [4][4]int{
		{0, r0, 0, b.w},   // southern rows
		{r1, b.h, 0, b.w}, // northern rows
		{r0, r1, 0, c0},   // western columns
		{r0, r1, c1, b.w}, // eastern columns
	}
}
