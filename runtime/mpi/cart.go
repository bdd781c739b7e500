package mpi

import (
	"fmt"
	"slices"
)

// DimsCreate returns a balanced grid of n ranks in len(dims) dimensions
// (MPI_Dims_create): entries of dims that are non-zero are kept, the zero
// ones are filled so that the product is n and the filled sizes are as close
// to each other as possible, in non-increasing order. dims is not modified.
func DimsCreate(n int, dims []int) ([]int, error) {
	out := slices.Clone(dims)
	fixed, free := 1, 0
	for _, d := range out {
		switch {
		case d < 0:
			return nil, fmt.Errorf("%w: dimension %d is negative", ErrCount, d)
		case d == 0:
			free++
		default:
			fixed *= d
		}
	}
	if n < 1 || n%fixed != 0 || (free == 0 && fixed != n) {
		return nil, fmt.Errorf("%w: cannot arrange %d ranks in dimensions %v", ErrCount, n, dims)
	}
	if free == 0 {
		return out, nil
	}
	sizes := balancedFactors(n/fixed, free)
	j := 0
	for i, d := range out {
		if d == 0 {
			out[i] = sizes[j]
			j++
		}
	}
	return out, nil
}

// balancedFactors returns k factors of m in non-increasing order whose
// product is m and whose spread (largest minus smallest) is the least
// possible; among those, the one with the smallest largest factor. It
// searches the divisors of m, which is fast for any rank count.
func balancedFactors(m, k int) []int {
	var divs []int // divisors of m, descending
	for d := 1; d*d <= m; d++ {
		if m%d == 0 {
			divs = append(divs, d)
			if d != m/d {
				divs = append(divs, m/d)
			}
		}
	}
	slices.Sort(divs)
	slices.Reverse(divs)
	var best, cur []int
	// atLeast reports whether d^k >= rest, without overflow.
	atLeast := func(d, k, rest int) bool {
		p := 1
		for range k {
			if p >= (rest+d-1)/d {
				return true
			}
			p *= d
		}
		return p >= rest
	}
	var search func(rest, k, maxd int)
	search = func(rest, k, maxd int) {
		if k == 1 {
			if rest > maxd {
				return
			}
			c := append(cur, rest)
			if best == nil || c[0]-rest < best[0]-best[len(best)-1] ||
				(c[0]-rest == best[0]-best[len(best)-1] && c[0] < best[0]) {
				best = slices.Clone(c)
			}
			return
		}
		for _, d := range divs {
			if d > maxd || rest%d != 0 {
				continue
			}
			if !atLeast(d, k, rest) {
				break // the other k-1 factors would have to exceed d
			}
			cur = append(cur, d)
			search(rest/d, k-1, d)
			cur = cur[:len(cur)-1]
		}
	}
	search(m, k, m)
	return best
}

// A Cart is a communicator whose ranks form a Cartesian grid, in row-major
// order (the last dimension varies fastest), as in MPI_Cart_create.
type Cart struct {
	*Comm
	dims    []int
	periods []bool
}

// CartCreate arranges c's ranks in a grid of dims (periodic along the
// dimensions where periods is true). It is collective over c. Ranks beyond
// the grid's size get nil. Ranks keep their order (no reordering).
func (c *Comm) CartCreate(dims []int, periods []bool) (*Cart, error) {
	if len(dims) == 0 || len(dims) != len(periods) {
		return nil, c.errorf("cart create", none, none, fmt.Errorf("%w: %d dimensions and %d periods", ErrCount, len(dims), len(periods)))
	}
	n := 1
	for _, d := range dims {
		if d < 1 {
			return nil, c.errorf("cart create", none, none, fmt.Errorf("%w: dimension %d in %v", ErrCount, d, dims))
		}
		n *= d
	}
	if n > c.size {
		return nil, c.errorf("cart create", none, none, fmt.Errorf("%w: grid %v needs %d ranks, communicator has %d", ErrCount, dims, n, c.size))
	}
	color := 0
	if c.rank >= n {
		color = Undefined
	}
	g, err := c.Split(color, c.rank)
	if err != nil || g == nil {
		return nil, err
	}
	return &Cart{Comm: g, dims: slices.Clone(dims), periods: slices.Clone(periods)}, nil
}

// Dims returns the grid's size in each dimension. The caller owns the slice.
func (t *Cart) Dims() []int { return slices.Clone(t.dims) }

// Periods reports which dimensions wrap around. The caller owns the slice.
func (t *Cart) Periods() []bool { return slices.Clone(t.periods) }

// Coords returns the grid coordinates of rank.
func (t *Cart) Coords(rank int) ([]int, error) {
	if rank < 0 || rank >= t.size {
		return nil, fmt.Errorf("%w: rank %d is not in [0, %d)", ErrRank, rank, t.size)
	}
	co := make([]int, len(t.dims))
	for i := len(t.dims) - 1; i >= 0; i-- {
		co[i] = rank % t.dims[i]
		rank /= t.dims[i]
	}
	return co, nil
}

// RankOf returns the rank at coords. Along periodic dimensions coordinates
// wrap around; outside a non-periodic dimension the result is ProcNull.
func (t *Cart) RankOf(coords []int) (int, error) {
	if len(coords) != len(t.dims) {
		return ProcNull, fmt.Errorf("%w: %d coordinates for a %d-dimensional grid", ErrCount, len(coords), len(t.dims))
	}
	r := 0
	for i, x := range coords {
		d := t.dims[i]
		if t.periods[i] {
			x = ((x % d) + d) % d
		} else if x < 0 || x >= d {
			return ProcNull, nil
		}
		r = r*d + x
	}
	return r, nil
}

// Shift returns the ranks disp steps before (source) and after (dest) this
// rank along dimension dim (MPI_Cart_shift): a halo exchange sends to dest
// and receives from source. At a non-periodic edge the missing neighbour is
// ProcNull, so the exchange code needs no special case.
func (t *Cart) Shift(dim, disp int) (source, dest int, err error) {
	if dim < 0 || dim >= len(t.dims) {
		return ProcNull, ProcNull, fmt.Errorf("%w: dimension %d of %d", ErrCount, dim, len(t.dims))
	}
	me, _ := t.Coords(t.rank)
	at := func(delta int) int {
		co := slices.Clone(me)
		co[dim] += delta
		r, _ := t.RankOf(co)
		return r
	}
	return at(-disp), at(disp), nil
}
