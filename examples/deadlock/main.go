// Command deadlock shows why two ranks that both send synchronously to each
// other before receiving wait forever, and two ways to write the exchange so
// that it cannot happen. Each rank sends its rank number to the right
// neighbour of a ring and receives from the left one: with 2 ranks the two
// send to each other, with 1 a rank sends to itself, and the reasoning is the
// same for any number.
//
//	gorun -n 2 ./examples/deadlock                   # deadlock detected, then both fixes
//	gorun -n 2 ./examples/deadlock --only-deadlock   # stops after the deadlock, exit status 1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

const tagValue = 1

func main() {
	only := flag.Bool("only-deadlock", false, "stop after showing the deadlock, with exit status 1")
	timeout := flag.Duration("timeout", 2*time.Second, "how long a send may wait before we call it a deadlock")
	flag.Parse()
	err := run(*only, *timeout)
	if errors.Is(err, errDeadlock) {
		os.Exit(1) // rank 0 has explained it already
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "deadlock:", err)
		os.Exit(1)
	}
}

var errDeadlock = errors.New("deadlock detected")

func run(only bool, timeout time.Duration) error {
	world, err := mpi.Init(context.Background())
	if err != nil {
		return err
	}
	var out io.Writer = io.Discard
	if world.Rank() == 0 {
		out = os.Stdout
	}
	if err := demo(world, out, only, timeout); err != nil && !errors.Is(err, errDeadlock) {
		return world.Abort(1, "deadlock: "+err.Error())
	} else if err != nil {
		// The deadlock was broken before demo returned: every rank can finalize.
		if ferr := world.Finalize(); ferr != nil {
			return ferr
		}
		return err
	}
	return world.Finalize()
}

// demo runs the deadlocking exchange, then, unless only, the two fixes,
// explaining on out. It returns errDeadlock when only is set.
func demo(c *mpi.Comm, out io.Writer, only bool, timeout time.Duration) error {
	fmt.Fprintf(out, "%d ranks; each sends its rank to the right and receives from the left.\n\n", c.Size())
	fmt.Fprintln(out, "1. Ssend first, then Recv:")
	stuck, err := sendFirst(c, timeout)
	if err != nil {
		return err
	}
	// The first rank to give up posts its receive, which may free a neighbour
	// that started later before its own clock ran out: agree that there was a
	// deadlock if any rank's send was stuck.
	verdict := []int32{0}
	if stuck {
		verdict[0] = 1
	}
	if err := collectives.Allreduce(c, nil, verdict, collectives.Max); err != nil {
		return err
	}
	if verdict[0] == 0 {
		return errors.New("the synchronous sends completed before any receive was posted")
	}
	fmt.Fprintf(out, "   DEADLOCK: no Ssend completed within %v. An Ssend returns only once the\n", timeout)
	fmt.Fprintln(out, "   receiver has matched it, but every rank is still inside its Ssend, so no")
	fmt.Fprintln(out, "   rank ever reaches its Recv: each waits for the next, around the ring.")
	fmt.Fprintln(out, "   (Broken for this demo by posting the missing receives.)")
	if only {
		return errDeadlock
	}
	fmt.Fprintln(out, "\n2. Fix: Sendrecv, which posts the receive before it sends:")
	if err := fixSendrecv(c); err != nil {
		return err
	}
	fmt.Fprintln(out, "   done, every rank got its left neighbour's rank.")
	fmt.Fprintln(out, "\n3. Fix: Irecv first (non-blocking, returns at once), then Ssend, then Wait:")
	if err := fixIrecvFirst(c); err != nil {
		return err
	}
	fmt.Fprintln(out, "   done: the receive was waiting before the synchronous send began.")
	return nil
}

// neighbours returns the ranks to the right (send to) and left (receive from).
func neighbours(c *mpi.Comm) (right, left int) {
	return (c.Rank() + 1) % c.Size(), (c.Rank() + c.Size() - 1) % c.Size()
}

// sendFirst starts a synchronous send to the right and waits up to timeout
// for it to complete, before any receive is posted. It reports whether the
// send was still stuck (the deadlock). Either way it then posts the receive,
// which lets the neighbour's send complete, and waits for its own send, so
// that every rank leaves cleanly.
func sendFirst(c *mpi.Comm, timeout time.Duration) (stuck bool, err error) {
	right, left := neighbours(c)
	req, err := mpi.Issend(c, []int64{int64(c.Rank())}, right, tagValue)
	if err != nil {
		return false, err
	}
	// A send's Wait cannot be abandoned half-way (WaitContext waits sends to
	// the end), so wait on a goroutine and watch the clock here. The goroutine
	// ends when the send completes: at the latest once the right neighbour
	// posts its receive below.
	done := make(chan error, 1)
	go func() {
		_, err := req.Wait()
		done <- err
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var sendErr error
	select {
	case sendErr = <-done:
		done = nil
	case <-timer.C:
		stuck = true
	}
	in := []int64{-1}
	if _, err := mpi.Recv(c, in, left, tagValue); err != nil {
		return stuck, err
	}
	if done != nil {
		sendErr = <-done // join the goroutine
	}
	if sendErr != nil {
		return stuck, sendErr
	}
	return stuck, check(in[0], left)
}

// fixSendrecv exchanges with Sendrecv, which cannot deadlock.
func fixSendrecv(c *mpi.Comm) error {
	right, left := neighbours(c)
	in := []int64{-1}
	if _, err := mpi.Sendrecv(c, []int64{int64(c.Rank())}, right, tagValue, in, left, tagValue); err != nil {
		return err
	}
	return check(in[0], left)
}

// fixIrecvFirst posts the receive before the (still synchronous) send.
func fixIrecvFirst(c *mpi.Comm) error {
	right, left := neighbours(c)
	in := []int64{-1}
	req, err := mpi.Irecv(c, in, left, tagValue)
	if err != nil {
		return err
	}
	if err := mpi.Ssend(c, []int64{int64(c.Rank())}, right, tagValue); err != nil {
		return err
	}
	if _, err := req.Wait(); err != nil {
		return err
	}
	return check(in[0], left)
}

func check(got int64, want int) error {
	if got != int64(want) {
		return fmt.Errorf("received %d; want %d", got, want)
	}
	return nil
}
