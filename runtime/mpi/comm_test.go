package mpi_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// TestSplit: ranks split by parity and ordered by descending key form the
// expected groups, and traffic on the new communicators stays apart.
func TestSplit(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, func(c *mpi.Comm) error {
				color := c.Rank() % 2
				s, err := c.Split(color, -c.Rank())
				if err != nil {
					return err
				}
				var want []int // world ranks of my color, highest first
				for r := n - 1; r >= 0; r-- {
					if r%2 == color {
						want = append(want, r)
					}
				}
				if got := s.Group(); !slices.Equal(got, want) {
					return fmt.Errorf("group %v; want %v", got, want)
				}
				if s.Rank() != slices.Index(want, c.Rank()) || s.Size() != len(want) {
					return fmt.Errorf("rank %d of %d; want %d of %d", s.Rank(), s.Size(), slices.Index(want, c.Rank()), len(want))
				}
				if w, _ := s.TranslateRank(s.Rank(), c); w != c.Rank() {
					return fmt.Errorf("TranslateRank = %d; want %d", w, c.Rank())
				}
				// A ring on the split communicator, with a message of the same
				// tag on the parent that must not be taken by it.
				if err := mpi.Send(c, []int{-1}, c.Rank(), 0); err != nil {
					return err
				}
				next, prev := (s.Rank()+1)%s.Size(), (s.Rank()+s.Size()-1)%s.Size()
				got := []int{0}
				if _, err := mpi.Sendrecv(s, []int{s.Rank()}, next, 0, got, prev, 0); err != nil {
					return err
				}
				if got[0] != prev {
					return fmt.Errorf("ring on split got %d; want %d", got[0], prev)
				}
				if _, err := mpi.Recv(c, got, c.Rank(), 0); err != nil || got[0] != -1 {
					return fmt.Errorf("parent message: %v, %v", got, err)
				}
				return s.Free()
			})
		})
	}
}

func TestDupAndUndefined(t *testing.T) {
	mpitest.Run(t, 4, func(c *mpi.Comm) error {
		d, err := c.Dup()
		if err != nil {
			return err
		}
		if d.Rank() != c.Rank() || d.Size() != c.Size() {
			return fmt.Errorf("dup is rank %d of %d", d.Rank(), d.Size())
		}
		// The same tag on c and on the dup never cross.
		peer := c.Size() - 1 - c.Rank()
		if err := mpi.Send(c, []int{1}, peer, 5); err != nil {
			return err
		}
		if err := mpi.Send(d, []int{2}, peer, 5); err != nil {
			return err
		}
		got := []int{0}
		if _, err := mpi.Recv(d, got, mpi.AnySource, mpi.AnyTag); err != nil || got[0] != 2 {
			return fmt.Errorf("dup recv %v, %v; want 2", got, err)
		}
		if _, err := mpi.Recv(c, got, mpi.AnySource, mpi.AnyTag); err != nil || got[0] != 1 {
			return fmt.Errorf("parent recv %v, %v; want 1", got, err)
		}
		color := 0
		if c.Rank() == 0 {
			color = mpi.Undefined
		}
		s, err := d.Split(color, 0)
		if err != nil {
			return err
		}
		if (c.Rank() == 0) != (s == nil) {
			return fmt.Errorf("rank %d: split returned %v", c.Rank(), s)
		}
		if err := d.Free(); err != nil {
			return err
		}
		if err := mpi.Send(d, []int{1}, 0, 0); !errors.Is(err, mpi.ErrFreed) {
			return fmt.Errorf("send on freed comm: %v; want ErrFreed", err)
		}
		if err := c.Free(); err == nil {
			return errors.New("Free of the world communicator succeeded")
		}
		node, err := c.SplitType(mpi.TypeShared)
		if err != nil {
			return err
		}
		if node.Size() != c.Size() { // all in-process ranks share a host
			return fmt.Errorf("SplitType size %d; want %d", node.Size(), c.Size())
		}
		return nil
	})
}

func TestDimsCreate(t *testing.T) {
	tests := []struct {
		n          int
		dims, want []int
	}{
		{8, []int{0, 0}, []int{4, 2}},
		{6, []int{0, 0}, []int{3, 2}},
		{7, []int{0, 0}, []int{7, 1}},
		{12, []int{0, 0, 0}, []int{3, 2, 2}},
		{16, []int{0, 0}, []int{4, 4}},
		{12, []int{0, 3}, []int{4, 3}},
		{1, []int{0, 0}, []int{1, 1}},
		{72, []int{0, 0}, []int{9, 8}}, // not 12 × 6: as close to each other as possible
		{36, []int{0, 0, 0}, []int{4, 3, 3}},
		{60, []int{0, 0}, []int{10, 6}},
		{64, []int{0, 0, 0}, []int{4, 4, 4}},
		{1024, []int{0, 0, 0, 0, 0}, []int{4, 4, 4, 4, 4}},
		{30, []int{0, 0, 0}, []int{5, 3, 2}},
		{97, []int{0, 0}, []int{97, 1}},
		{48, []int{0, 2, 0}, []int{6, 2, 4}},
	}
	for _, tc := range tests {
		got, err := mpi.DimsCreate(tc.n, tc.dims)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("DimsCreate(%d, %v) = %v, %v; want %v", tc.n, tc.dims, got, err, tc.want)
		}
	}
	if _, err := mpi.DimsCreate(10, []int{0, 3}); !errors.Is(err, mpi.ErrCount) {
		t.Errorf("DimsCreate(10, [0 3]) = %v; want ErrCount", err)
	}
}

func TestCart(t *testing.T) {
	mpitest.Run(t, 7, func(c *mpi.Comm) error {
		g, err := c.CartCreate([]int{3, 2}, []bool{false, true})
		if err != nil {
			return err
		}
		if c.Rank() == 6 {
			if g != nil {
				return errors.New("rank 6 is outside a 3x2 grid but got a Cart")
			}
			return nil
		}
		co, err := g.Coords(g.Rank())
		if err != nil {
			return err
		}
		if want := []int{g.Rank() / 2, g.Rank() % 2}; !slices.Equal(co, want) {
			return fmt.Errorf("coords %v; want %v", co, want)
		}
		// Dimension 0 is not periodic: the edges see ProcNull.
		up, down, err := g.Shift(0, 1)
		if err != nil {
			return err
		}
		wantUp, wantDown := g.Rank()-2, g.Rank()+2
		if co[0] == 0 {
			wantUp = mpi.ProcNull
		}
		if co[0] == 2 {
			wantDown = mpi.ProcNull
		}
		if up != wantUp || down != wantDown {
			return fmt.Errorf("shift(0,1) = %d,%d; want %d,%d", up, down, wantUp, wantDown)
		}
		// Dimension 1 is periodic: always a neighbour, wrapping around.
		left, right, _ := g.Shift(1, 1)
		if right != co[0]*2+(co[1]+1)%2 || left != right {
			return fmt.Errorf("shift(1,1) = %d,%d", left, right)
		}
		// A halo exchange down the non-periodic dimension needs no special case.
		got := []int{-7}
		if _, err := mpi.Sendrecv(g.Comm, []int{g.Rank()}, down, 0, got, up, 0); err != nil {
			return err
		}
		if (up == mpi.ProcNull && got[0] != -7) || (up != mpi.ProcNull && got[0] != up) {
			return fmt.Errorf("halo from %d got %d", up, got[0])
		}
		return nil
	})
}
