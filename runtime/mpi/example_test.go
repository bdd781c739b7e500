package mpi_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// A program run alone (without gorun) is a world of one rank.
func ExampleInit() {
	world, err := mpi.Init(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer world.Finalize()
	fmt.Printf("rank %d of %d\n", world.Rank(), world.Size())
	// Output: rank 0 of 1
}

// Rank 0 sends a slice of float64 to rank 1. The ranks are goroutines here;
// under gorun they are processes and the code is the same.
func ExampleSend() {
	_ = mpitest.Go(context.Background(), 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.Send(c, []float64{1.5, 2.5}, 1, 0)
		}
		buf := make([]float64, 4)
		st, err := mpi.Recv(c, buf, mpi.AnySource, mpi.AnyTag)
		fmt.Printf("got %v from rank %d, tag %d\n", buf[:st.Count], st.Source, st.Tag)
		return err
	})
	// Output: got [1.5 2.5] from rank 0, tag 0
}

// Each rank swaps a value with its neighbour in a ring: Sendrecv cannot
// deadlock, whatever the order the ranks arrive in.
func ExampleSendrecv() {
	got := make([]int, 3)
	_ = mpitest.Go(context.Background(), 3, func(c *mpi.Comm) error {
		right := (c.Rank() + 1) % c.Size()
		left := (c.Rank() + c.Size() - 1) % c.Size()
		in := []int{0}
		_, err := mpi.Sendrecv(c, []int{c.Rank() * 10}, right, 0, in, left, 0)
		got[c.Rank()] = in[0]
		return err
	})
	fmt.Println(got)
	// Output: [20 0 10]
}

// Non-blocking calls let a rank post its receives, send, and wait for all.
func ExampleIrecv() {
	_ = mpitest.Go(context.Background(), 2, func(c *mpi.Comm) error {
		peer := 1 - c.Rank()
		in := make([]int32, 2)
		rq, err := mpi.Irecv(c, in, peer, 7)
		if err != nil {
			return err
		}
		sq, err := mpi.Isend(c, []int32{int32(c.Rank()), 42}, peer, 7)
		if err != nil {
			return err
		}
		if err := mpi.WaitAll(rq, sq); err != nil {
			return err
		}
		if c.Rank() == 0 {
			fmt.Println("rank 0 received", in)
		}
		return nil
	})
	// Output: rank 0 received [1 42]
}

// Any Go value travels through msgpack.
func ExampleSendValue() {
	type params struct {
		Name  string
		Steps int
	}
	_ = mpitest.Go(context.Background(), 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.SendValue(c, params{"storm", 100}, 1, 0)
		}
		var p params
		_, err := mpi.RecvValue(c, &p, 0, 0)
		fmt.Printf("%+v\n", p)
		return err
	})
	// Output: {Name:storm Steps:100}
}

// Probe sizes a receive buffer for a message of unknown length.
func ExampleProbe() {
	_ = mpitest.Go(context.Background(), 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.Send(c, []uint8("variable length"), 1, 3)
		}
		st, err := mpi.Probe(c, 0, mpi.AnyTag)
		if err != nil {
			return err
		}
		buf := make([]uint8, st.Count)
		if _, err := mpi.Recv(c, buf, st.Source, st.Tag); err != nil {
			return err
		}
		fmt.Printf("%d bytes: %s\n", st.Count, buf)
		return nil
	})
	// Output: 15 bytes: variable length
}

// Iprobe lets a rank do useful work while it waits, until the message is
// there. Each Iprobe also hands what the
// transports have received to the matching engine, so the loop needs
// nothing else to make progress.
func ExampleIprobe() {
	_ = mpitest.Go(context.Background(), 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.Send(c, []int64{7, 11}, 1, 5)
		}
		for {
			st, ok, err := mpi.Iprobe(c, 0, 5)
			if err != nil {
				return err
			}
			if ok {
				buf := make([]int64, st.Count)
				if _, err := mpi.Recv(c, buf, st.Source, st.Tag); err != nil {
					return err
				}
				fmt.Println("received", buf)
				return nil
			}
			doSomeWork() // a unit of the rank's own computation
		}
	})
	// Output: received [7 11]
}

// doSomeWork stands for a rank's own computation between probes.
func doSomeWork() {}

// WaitAny serves whichever request completes first: rank 0 collects one
// message from each of the others, in the order they arrive.
func ExampleWaitAny() {
	_ = mpitest.Go(context.Background(), 3, func(c *mpi.Comm) error {
		if c.Rank() != 0 {
			return mpi.Send(c, []int32{int32(100 * c.Rank())}, 0, 1)
		}
		bufs := [][]int32{make([]int32, 1), make([]int32, 1)}
		reqs := make([]*mpi.Request, 2)
		for i := range reqs {
			r, err := mpi.Irecv(c, bufs[i], i+1, 1)
			if err != nil {
				return err
			}
			reqs[i] = r
		}
		sum := int32(0)
		for range reqs {
			i, _, err := mpi.WaitAny(reqs...)
			if err != nil {
				return err
			}
			sum += bufs[i][0]
			reqs[i] = nil // served: WaitAny skips nil requests
		}
		fmt.Println("sum", sum)
		return nil
	})
	// Output: sum 300
}

// Ranks of one host can share memory. Each rank writes its square into its
// own 8-byte cell and raises its flag (an atomic store, then Wake); rank 0
// waits for every flag (WaitUntil spins briefly, then sleeps) and sums.
func ExampleComm_AllocShared() {
	_ = mpitest.Go(context.Background(), 4, func(c *mpi.Comm) error {
		m, err := c.AllocShared(64 * c.Size())
		if err != nil {
			return err // mpi.ErrNotShared when the ranks span hosts
		}
		b := m.Bytes()
		cell := func(r int) *uint64 { return (*uint64)(unsafe.Pointer(&b[64*r])) }
		flag := func(r int) *uint32 { return (*uint32)(unsafe.Pointer(&b[64*r+8])) }
		*cell(c.Rank()) = uint64(c.Rank() * c.Rank())
		atomic.StoreUint32(flag(c.Rank()), 1) // publishes the cell
		m.Wake()
		if c.Rank() != 0 {
			return nil // rank 0 reads through its own mapping, which outlives ours
		}
		var sum uint64
		for r := range c.Size() {
			if err := m.WaitUntil(func() bool { return atomic.LoadUint32(flag(r)) == 1 }); err != nil {
				return err
			}
			sum += *cell(r)
		}
		fmt.Println("sum of squares:", sum)
		return nil
	})
	// Output: sum of squares: 14
}
