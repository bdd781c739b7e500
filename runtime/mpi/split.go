package mpi

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Undefined is the color that leaves a rank out of every new communicator
// in Split (MPI_UNDEFINED): Split returns nil for it.
const Undefined = -32766

// SplitKind selects how SplitType groups ranks.
type SplitKind int

// TypeShared groups the ranks that share a host, and so can share memory
// (MPI_COMM_TYPE_SHARED).
const TypeShared SplitKind = 1

// tagSplit is the tag of communicator construction on the collective
// context. Tags from reservedTags up are package mpi's own there; package
// collectives and users of Collective stay below.
const (
	reservedTags = 1 << 30
	tagSplit     = reservedTags + 1
)

// splitEntry is what each rank contributes to a split.
type splitEntry struct {
	Color, Key int
	Host       string
	NextCtx    uint32
}

// Dup returns a new communicator with the same ranks as c and a new
// matching context: its traffic never matches c's. It is collective over c.
func (c *Comm) Dup() (*Comm, error) {
	return c.split("dup", func(int) (int, int) { return 0, c.rank })
}

// Split partitions c: ranks that pass the same color form a new
// communicator, ordered by key (ties by rank in c). A rank that passes
// Undefined gets nil. It is collective over c: every rank must call it.
func (c *Comm) Split(color, key int) (*Comm, error) {
	if color < 0 && color != Undefined {
		return nil, c.errorf("split", none, none, fmt.Errorf("%w: color %d must be >= 0 or Undefined", ErrCount, color))
	}
	return c.split("split", func(int) (int, int) { return color, key })
}

// SplitType partitions c by kind; TypeShared gives one communicator per
// host, holding the ranks of c on that host in their order in c. Collective.
func (c *Comm) SplitType(kind SplitKind) (*Comm, error) {
	if kind != TypeShared {
		return nil, c.errorf("split type", none, none, fmt.Errorf("%w: unknown split kind %d", ErrCount, kind))
	}
	return c.split("split type", nil)
}

// Free releases c. Operations on c afterwards fail with ErrFreed. It must
// not be called on the world communicator (use Finalize).
func (c *Comm) Free() error {
	if c == c.w.comm {
		return c.errorf("free", none, none, errors.New("mpi: the world communicator is released by Finalize, not Free"))
	}
	c.freed.Store(true)
	return nil
}

// ErrFreed is returned by operations on a communicator after Free.
var ErrFreed = errors.New("mpi: communicator was freed")

// split runs the agreement behind Dup, Split and SplitType: rank 0 of c
// gathers every rank's entry and sends the table back; each rank then builds
// its group locally. colorKey nil means split by host.
func (c *Comm) split(op string, colorKey func(rank int) (int, int)) (*Comm, error) {
	if err := c.usable(); err != nil {
		return nil, c.errorf(op, none, none, err)
	}
	w := c.w
	me := splitEntry{Host: w.host, NextCtx: w.nextCtx.Load()}
	if colorKey != nil {
		me.Color, me.Key = colorKey(c.rank)
	}
	table, err := c.allgatherEntries(me)
	if err != nil {
		return nil, c.errorf(op, none, none, err)
	}
	// The new context is above every member's next free one, so it is
	// unused in every member process; everyone moves past it.
	var ctx uint32
	for _, e := range table {
		ctx = max(ctx, e.NextCtx)
	}
	for {
		cur := w.nextCtx.Load()
		if cur >= ctx+2 || w.nextCtx.CompareAndSwap(cur, ctx+2) {
			break
		}
	}
	if colorKey == nil {
		// One color per distinct host, in order of first appearance.
		hosts := map[string]int{}
		for i := range table {
			if _, ok := hosts[table[i].Host]; !ok {
				hosts[table[i].Host] = len(hosts)
			}
			table[i].Color, table[i].Key = hosts[table[i].Host], i
		}
	}
	mine := table[c.rank].Color
	if mine == Undefined {
		return nil, nil
	}
	var members []int // ranks of c in the new communicator
	for r, e := range table {
		if e.Color == mine {
			members = append(members, r)
		}
	}
	slices.SortStableFunc(members, func(a, b int) int { return cmp.Compare(table[a].Key, table[b].Key) })
	ranks := make([]int32, len(members))
	newRank := -1
	for i, r := range members {
		ranks[i] = c.toWorld(r)
		if r == c.rank {
			newRank = i
		}
	}
	return newComm(w, ctx, newRank, ranks), nil
}

// allgatherEntries gives every rank of c the entries of all ranks, through
// rank 0, on the collective context.
func (c *Comm) allgatherEntries(me splitEntry) ([]splitEntry, error) {
	cc := c.Collective()
	table := make([]splitEntry, c.size)
	if c.rank != 0 {
		if err := SendValue(cc, me, 0, tagSplit); err != nil {
			return nil, err
		}
		_, err := RecvValue(cc, &table, 0, tagSplit)
		return table, err
	}
	table[0] = me
	for range c.size - 1 {
		var e splitEntry
		st, err := RecvValue(cc, &e, AnySource, tagSplit)
		if err != nil {
			return nil, err
		}
		table[st.Source] = e
	}
	for r := 1; r < c.size; r++ {
		if err := SendValue(cc, table, r, tagSplit); err != nil {
			return nil, err
		}
	}
	return table, nil
}

// Group returns the world ranks of c's members, in c's rank order: rank i
// of c is world rank Group()[i]. The caller owns the returned slice.
func (c *Comm) Group() []int {
	g := make([]int, c.size)
	for i := range g {
		g[i] = int(c.toWorld(i))
	}
	return g
}

// TranslateRank returns the rank in other of rank r of c, or ProcNull if
// that process is not in other (MPI_Group_translate_ranks).
func (c *Comm) TranslateRank(r int, other *Comm) (int, error) {
	if err := c.checkPeer(r, false); err != nil || r == ProcNull {
		return ProcNull, err
	}
	if o := other.fromWorld(int(c.toWorld(r))); o >= 0 {
		return o, nil
	}
	return ProcNull, nil
}
