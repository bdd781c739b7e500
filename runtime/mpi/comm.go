package mpi

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/gorun-hpc/gorun/internal/commslot"
	"github.com/gorun-hpc/gorun/runtime/internal/match"
)

// Wildcards and special ranks.
const (
	// AnySource receives from any rank (MPI_ANY_SOURCE).
	AnySource = -1
	// AnyTag receives any tag (MPI_ANY_TAG).
	AnyTag = -1
	// ProcNull is a rank that sends and receives nothing: operations on it
	// complete at once (MPI_PROC_NULL). Stencils use it at domain edges.
	ProcNull = -2
	// MaxTag is the largest tag a message may carry.
	MaxTag = math.MaxInt32
)

// A Comm is a communicator: a group of ranks and a private matching context,
// so traffic on one communicator never matches receives on another.
//
// A Comm is safe for concurrent use by any number of goroutines
// (MPI_THREAD_MULTIPLE). Messages from one sender to one receiver on one
// communicator are received in the order they were sent (non-overtaking)
// when the sends are ordered, i.e. issued one after the other.
type Comm struct {
	w     *world
	ctx   uint32 // point-to-point context; ctx+1 is the collective context
	rank  int
	size  int
	ranks []int32     // communicator rank → world rank; nil means identity
	index map[int]int // world rank → communicator rank; nil means identity
	coll  *Comm       // the collective view, built at creation
	isCol bool
	// Shared by c and its collective view.
	freed *atomic.Bool         // Free was called
	seq   *atomic.Uint64       // collective calls started, for NextSeq
	slot  *atomic.Pointer[any] // package collectives' state (internal/commslot)
}

func init() {
	commslot.Of = func(c any) *atomic.Pointer[any] { return c.(*Comm).slot }
}

// Rank returns the calling process's rank in c, in [0, Size()).
func (c *Comm) Rank() int { return c.rank }

// Size returns the number of ranks in c.
func (c *Comm) Size() int { return c.size }

// Host returns the name of the host this rank runs on (the processor name
// of MPI_Get_processor_name).
func (c *Comm) Host() string { return c.w.host }

// LocalRank returns the rank of this process among the job's processes on
// the same host.
func (c *Comm) LocalRank() int { return c.w.localRank }

// LocalSize returns the number of the job's processes on this host.
func (c *Comm) LocalSize() int { return c.w.localSize }

// Collective returns the same group of ranks on a separate matching context
// reserved for collective operations, so that their traffic never matches
// user point-to-point messages. It is meant for implementations of
// collective algorithms such as package collectives.
func (c *Comm) Collective() *Comm {
	if c.isCol {
		return c
	}
	return c.coll
}

// newComm builds a communicator and its collective view.
func newComm(w *world, ctx uint32, rank int, ranks []int32) *Comm {
	c := &Comm{w: w, ctx: ctx, rank: rank, size: len(ranks), ranks: ranks,
		freed: new(atomic.Bool), seq: new(atomic.Uint64), slot: new(atomic.Pointer[any])}
	if ranks == nil {
		c.size = w.size
	} else {
		c.index = make(map[int]int, len(ranks))
		for i, r := range ranks {
			c.index[int(r)] = i
		}
	}
	cc := *c
	cc.ctx = ctx + 1
	cc.isCol = true
	c.coll = &cc
	return c
}

// toWorld maps a communicator rank to a world rank.
func (c *Comm) toWorld(r int) int32 {
	if c.ranks == nil {
		return int32(r)
	}
	return c.ranks[r]
}

// fromWorld maps a world rank to a communicator rank.
func (c *Comm) fromWorld(r int) int {
	if c.index == nil {
		return r
	}
	if cr, ok := c.index[r]; ok {
		return cr
	}
	return -1
}

func (c *Comm) errorf(op string, peer, tag int, err error) error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Op: op, Rank: c.rank, Peer: peer, Tag: tag, Err: err}
}

// Err returns why operations can no longer start on c (ErrFreed after
// Free, ErrFinalized after Finalize), or nil. Package collectives checks it
// before its shared-memory paths, which do not go through Send and Recv.
func (c *Comm) Err() error {
	if err := c.usable(); err != nil {
		return c.errorf("comm", none, none, err)
	}
	return nil
}

// usable reports whether operations may start on c.
func (c *Comm) usable() error {
	if c.w.finalized.Load() {
		return ErrFinalized
	}
	if c.freed.Load() {
		return ErrFreed
	}
	return nil
}

// NextSeq returns a number that grows by one with each call on c or its
// Collective view, starting at 1. Every rank calls collective operations on
// a communicator in the same order, so each draws the same numbers:
// implementations of collectives (package collectives) put it in their tags
// to keep the messages of successive, possibly overlapping, non-blocking
// collective calls apart.
func (c *Comm) NextSeq() uint64 { return c.seq.Add(1) }

func (c *Comm) checkPeer(r int, wildcard bool) error {
	if r == ProcNull || (wildcard && r == AnySource) || (r >= 0 && r < c.size) {
		return nil
	}
	return fmt.Errorf("%w: rank %d is not in [0, %d)", ErrRank, r, c.size)
}

func checkTag(tag int, wildcard bool) error {
	if (tag >= 0 && tag <= MaxTag) || (wildcard && tag == AnyTag) {
		return nil
	}
	return fmt.Errorf("%w: %d (tags are 0..%d)", ErrTag, tag, MaxTag)
}

// pattern builds a receive pattern for source src and tag on c.
func (c *Comm) pattern(src, tag int) match.Envelope {
	p := match.Envelope{Context: c.ctx, Source: match.Any, Tag: match.Any}
	if src != AnySource {
		p.Source = c.toWorld(src)
	}
	if tag != AnyTag {
		p.Tag = int32(tag)
	}
	return p
}

// Status describes a received or probed message.
type Status struct {
	Source int // sender's rank in the communicator
	Tag    int
	Count  int // number of elements, of the sender's element type
	bytes  int
	typ    uint8
}

// Bytes returns the message's payload size in bytes.
func (s Status) Bytes() int { return s.bytes }

var epoch = time.Now()

// Wtime returns the seconds elapsed since an arbitrary moment fixed for the
// process, from a monotonic clock (MPI_Wtime). Differences between two calls
// time a stretch of work.
func Wtime() float64 { return time.Since(epoch).Seconds() }
