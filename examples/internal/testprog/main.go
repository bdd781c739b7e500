// Command testprog is a rank program for gorun's integration tests. Its
// first argument picks a behaviour; every rank first prints "pid <rank>
// <pid> <job>" so tests can check that no process or shared-memory file
// outlives the job.
//
//	testprog fail R CODE   rank R prints "exiting R <unix nanoseconds>" and exits with
//	                       CODE; the others block receiving from R
//	testprog kill R        rank R kills itself with SIGKILL; the others block receiving from R
//	testprog block         every rank prints "blocking R", then blocks receiving from the
//	                       next rank; if that fails it prints "blocked recv returned: ERR"
//	                       on stderr and exits 1
//	testprog blocksend D FIFO  like block, but rank 1 first waits for rank 0, which waits
//	                       for a line from the named pipe FIFO, then sends to rank D (its
//	                       first message there) and prints "blocked send returned: ERR"
//	                       on stderr and exits 1 when that fails
//	testprog exchange N [MAX]  every pair of ranks exchanges N messages of random
//	                           sizes (up to MAX bytes, default 1 MiB) and tags, checked
//	testprog nofinalize R  rank R exits 0 without calling Finalize
//	testprog gomaxprocs    every rank prints "gomaxprocs R N", N its GOMAXPROCS after Init
//	testprog idlebarrier MS  rank 0 sleeps MS milliseconds before collectives.Barrier;
//	                       every other rank prints "idlebarrier R WALL CPU", the wall
//	                       and CPU seconds its process used while blocked in it
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

func main() {
	world, err := mpi.Init(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "testprog:", err)
		os.Exit(1)
	}
	rank := world.Rank()
	fmt.Printf("pid %d %d %s\n", rank, os.Getpid(), os.Getenv("GORUN_JOB"))
	arg := func(i int) int {
		n, _ := strconv.Atoi(os.Args[i])
		return n
	}
	// Every rank is running before anyone misbehaves.
	if err := barrier(world); err != nil {
		fmt.Fprintln(os.Stderr, "testprog: barrier:", err)
		os.Exit(1)
	}
	switch os.Args[1] {
	case "fail", "kill":
		bad := arg(2)
		if rank == bad {
			if os.Args[1] == "kill" {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			fmt.Printf("exiting %d %d\n", rank, time.Now().UnixNano())
			os.Exit(arg(3))
		}
		_, err := mpi.Recv(world, []int{0}, bad, 0)
		fmt.Fprintf(os.Stderr, "rank %d: recv from failed rank: %v (peer lost: %v)\n", rank, err, errors.Is(err, mpi.ErrPeerLost) || errors.Is(err, mpi.ErrAborted))
		os.Exit(1)
	case "blocksend":
		fmt.Printf("blocking %d\n", rank)
		switch rank {
		case 0:
			// The launcher forwards stdin only to a local rank 0; a
			// named pipe reaches ranks on any host of a shared file system.
			f, err := os.Open(os.Args[3])
			if err == nil {
				_, err = bufio.NewReader(f).ReadString('\n')
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "testprog: read the go line:", err)
				os.Exit(1)
			}
			if err := mpi.Send(world, []int{1}, 1, 5); err != nil {
				fmt.Fprintln(os.Stderr, "testprog: send go:", err)
				os.Exit(1)
			}
		case 1:
			if _, err := mpi.Recv(world, []int{0}, 0, 5); err != nil {
				fmt.Fprintln(os.Stderr, "testprog: recv go:", err)
				os.Exit(1)
			}
			fmt.Printf("sending 1 to %d\n", arg(2))
			err := mpi.Send(world, []int{1}, arg(2), 0)
			fmt.Fprintln(os.Stderr, "blocked send returned:", err)
			os.Exit(1)
		}
		_, err := mpi.Recv(world, []int{0}, (rank+1)%world.Size(), 0)
		fmt.Fprintln(os.Stderr, "blocked recv returned:", err)
		os.Exit(1)
	case "block":
		fmt.Printf("blocking %d\n", rank)
		_, err := mpi.Recv(world, []int{0}, (rank+1)%world.Size(), 0)
		fmt.Fprintln(os.Stderr, "blocked recv returned:", err)
		os.Exit(1)
	case "exchange":
		maxBytes := 1 << 20
		if len(os.Args) > 3 {
			maxBytes = arg(3)
		}
		if err := exchange(world, arg(2), maxBytes/4); err != nil {
			fmt.Fprintf(os.Stderr, "rank %d: %v\n", rank, err)
			os.Exit(1)
		}
		fmt.Printf("rank %d exchanged ok\n", rank)
	case "idlebarrier":
		if err := idleBarrier(world, time.Duration(arg(2))*time.Millisecond); err != nil {
			fmt.Fprintf(os.Stderr, "rank %d: %v\n", rank, err)
			os.Exit(1)
		}
	case "gomaxprocs":
		fmt.Printf("gomaxprocs %d %d\n", rank, runtime.GOMAXPROCS(0))
	case "nofinalize":
		if rank == arg(2) {
			os.Exit(0)
		}
		_, err := mpi.Recv(world, []int{0}, arg(2), 0)
		fmt.Fprintln(os.Stderr, "recv returned:", err)
		os.Exit(1)
	}
	if err := world.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, "testprog: finalize:", err)
		os.Exit(1)
	}
}

// barrier: everyone reports to rank 0, which answers everyone.
func barrier(c *mpi.Comm) error {
	if c.Rank() == 0 {
		for range c.Size() - 1 {
			if _, err := mpi.Recv(c.Collective(), []int{0}, mpi.AnySource, 0); err != nil {
				return err
			}
		}
		for r := 1; r < c.Size(); r++ {
			if err := mpi.Send(c.Collective(), []int{0}, r, 1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := mpi.Send(c.Collective(), []int{0}, 0, 0); err != nil {
		return err
	}
	_, err := mpi.Recv(c.Collective(), []int{0}, 0, 1)
	return err
}

// fill writes a pattern that depends on sender, receiver, message index and
// position, so any misplaced or corrupted byte is caught.
func fill(b []uint32, src, dst, i int) {
	for j := range b {
		b[j] = uint32(src*1_000_003 ^ dst*7919 ^ i*104_729 ^ j*31)
	}
}

// exchange sends n messages of random sizes (0 to maxElems elements, one in
// eight of them large) and tags to every other rank, receiving theirs with
// wildcards, and checks every element and the per-sender order.
func exchange(c *mpi.Comm, n, maxElems int) error {
	rank, size := c.Rank(), c.Size()
	sizes := func(src int) []int { // the same sequence on sender and receiver
		r := rand.New(rand.NewPCG(uint64(src), 42))
		s := make([]int, n)
		for i := range s {
			if r.IntN(8) == 0 {
				s[i] = r.IntN(maxElems + 1)
			} else {
				s[i] = r.IntN(64)
			}
		}
		return s
	}
	errc := make(chan error, 1)
	go func() { // sender; joined through errc
		my := sizes(rank)
		for i := range n {
			for dst := range size {
				if dst == rank {
					continue
				}
				b := make([]uint32, my[i])
				fill(b, rank, dst, i)
				if err := mpi.Send(c, b, dst, i%7); err != nil {
					errc <- err
					return
				}
			}
		}
		errc <- nil
	}()
	next := make([]int, size)
	all := make([][]int, size)
	for src := range size {
		all[src] = sizes(src)
	}
	buf := make([]uint32, maxElems+64)
	want := make([]uint32, maxElems+64)
	for range n * (size - 1) {
		st, err := mpi.Recv(c, buf, mpi.AnySource, mpi.AnyTag)
		if err != nil {
			return err
		}
		i := next[st.Source]
		next[st.Source]++
		if st.Count != all[st.Source][i] || st.Tag != i%7 {
			return fmt.Errorf("message %d from rank %d: count %d tag %d; want %d and %d", i, st.Source, st.Count, st.Tag, all[st.Source][i], i%7)
		}
		fill(want[:st.Count], st.Source, rank, i)
		for j := range st.Count {
			if buf[j] != want[j] {
				return fmt.Errorf("message %d from rank %d: element %d is %d; want %d", i, st.Source, j, buf[j], want[j])
			}
		}
	}
	return <-errc
}

// idleBarrier: rank 0 sleeps for d, then joins a Barrier (on the
// communicator's shared memory when the ranks share a host); the others
// print the wall and CPU seconds their process used while blocked in it.
func idleBarrier(c *mpi.Comm, d time.Duration) error {
	if err := collectives.Barrier(c); err != nil { // sets the region up
		return err
	}
	if c.Rank() == 0 {
		time.Sleep(d)
		return collectives.Barrier(c)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0, w0 := cpu(), time.Now()
	if err := collectives.Barrier(c); err != nil {
		return err
	}
	fmt.Printf("idlebarrier %d %.3f %.3f\n", c.Rank(), time.Since(w0).Seconds(), (cpu() - c0).Seconds())
	return nil
}
