package main

import "github.com/gorun-hpc/gorun/runtime/mpi"

// Tags name the direction a halo message travels, so that the two messages
// between the same pair of ranks (east and west neighbour are the same rank
// on a grid two blocks wide, and this rank itself on a grid one block wide)
// are never confused.
const (
	tagNorth = iota + 1
	tagSouth
	tagEast
	tagWest
)

// A side is one of the four halo exchanges of a block: the cells sent to
// the neighbour on that side and those received from it.
type side struct {
	peer    int // neighbour's rank, or mpi.ProcNull at a wall
	tag     int // tag of the messages travelling towards peer
	fromTag int // tag of the messages arriving from peer
	out, in []float64
}

// An exchanger swaps the halos of the fields of a block with the four
// neighbours, without blocking: post starts the transfers, finish waits
// for them and unpacks what arrived.
//
// Rows and columns alike are packed into contiguous buffers, one message per
// side carrying every field, so each exchange is four messages each way.
type exchanger struct {
	comm  *mpi.Comm
	b     *block
	sides [4]side
	reqs  []*mpi.Request
}

// newExchanger prepares the exchange on cart, whose dimension 0 runs south to
// north and dimension 1 west to east (periodic), for nf fields per cell.
func newExchanger(cart *mpi.Cart, b *block, nf int) (*exchanger, error) {
	south, north, err := cart.Shift(0, 1)
	if err != nil {
		return nil, err
	}
	west, east, err := cart.Shift(1, 1)
	if err != nil {
		return nil, err
	}
	rows, cols := halo*b.w*nf, halo*b.h*nf
	x := &exchanger{comm: cart.Comm, b: b}
	// For each side: which local cells go out (the block's edge) and which
	// come in (the halo beyond that edge), for k in 0..halo-1.
	x.sides = [4]side{
		{peer: north, tag: tagNorth, fromTag: tagSouth, out: make([]float64, rows), in: make([]float64, rows)},
		{peer: south, tag: tagSouth, fromTag: tagNorth, out: make([]float64, rows), in: make([]float64, rows)},
		{peer: east, tag: tagEast, fromTag: tagWest, out: make([]float64, cols), in: make([]float64, cols)},
		{peer: west, tag: tagWest, fromTag: tagEast, out: make([]float64, cols), in: make([]float64, cols)},
	}
	return x, nil
}

// cells calls fn for the local cells of the band of side s, halo cells
// thick, in a fixed order: inside the block (edge cells, sent) or just
// beyond it (halo cells, received).
func (b *block) cells(s int, beyond bool, fn func(r, c int)) {
	var r0, c0, nr, nc int
	switch s {
	case 0: // north
		r0, c0, nr, nc = b.h-halo, 0, halo, b.w
		if beyond {
			r0 = b.h
		}
	case 1: // south
		r0, c0, nr, nc = 0, 0, halo, b.w
		if beyond {
			r0 = -halo
		}
	case 2: // east
		r0, c0, nr, nc = 0, b.w-halo, b.h, halo
		if beyond {
			c0 = b.w
		}
	case 3: // west
		r0, c0, nr, nc = 0, 0, b.h, halo
		if beyond {
			c0 = -halo
		}
	}
	for r := r0; r < r0+nr; r++ {
		for c := c0; c < c0+nc; c++ {
			fn(r, c)
		}
	}
}

// post packs the edges of fields and starts the eight transfers: a receive
// from each neighbour, posted first so arriving data lands straight in
// place, and a send to each. Neither fields' edges nor the buffers may
// change until finish returns.
func (x *exchanger) post(fields ...[]float64) error {
	x.reqs = x.reqs[:0]
	for s := range x.sides {
		sd := &x.sides[s]
		rq, err := mpi.Irecv(x.comm, sd.in, sd.peer, sd.fromTag)
		if err != nil {
			return err
		}
		x.reqs = append(x.reqs, rq)
	}
	for s := range x.sides {
		sd := &x.sides[s]
		n := 0
		for _, f := range fields {
			x.b.cells(s, false, func(r, c int) {
				sd.out[n] = f[x.b.at(r, c)]
				n++
			})
		}
		rq, err := mpi.Isend(x.comm, sd.out, sd.peer, sd.tag)
		if err != nil {
			return err
		}
		x.reqs = append(x.reqs, rq)
	}
	return nil
}

// finish waits for the transfers started by post and unpacks the received
// halos into fields. At a wall (peer ProcNull) nothing arrives and the halo
// is left alone: the physics never reads it (see block.rowOff).
func (x *exchanger) finish(fields ...[]float64) error {
	if err := mpi.WaitAll(x.reqs...); err != nil {
		return err
	}
	for s := range x.sides {
		sd := &x.sides[s]
		if sd.peer == mpi.ProcNull {
			continue
		}
		n := 0
		for _, f := range fields {
			// Rows arriving from the north were the neighbour's southern
			// edge, read in the same row-by-row order as they are written here.
			x.b.cells(s, true, func(r, c int) {
				f[x.b.at(r, c)] = sd.in[n]
				n++
			})
		}
	}
	return nil
}
