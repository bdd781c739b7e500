package mpi_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

func TestSendRecvTypes(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			if err := mpi.Send(c, []float64{1.5, 2.5, 3.5}, 1, 7); err != nil {
				return err
			}
			if err := mpi.Send(c, []int32{-1, 2}, 1, 8); err != nil {
				return err
			}
			return mpi.Send(c, []complex128{complex(1, -1)}, 1, 9)
		}
		f := make([]float64, 5)
		st, err := mpi.Recv(c, f, 0, 7)
		if err != nil {
			return err
		}
		if st.Source != 0 || st.Tag != 7 || st.Count != 3 || st.Bytes() != 24 {
			return fmt.Errorf("status = %+v (bytes %d); want source 0 tag 7 count 3 bytes 24", st, st.Bytes())
		}
		if f[0] != 1.5 || f[1] != 2.5 || f[2] != 3.5 || f[3] != 0 {
			return fmt.Errorf("got %v; want [1.5 2.5 3.5 0 0]", f)
		}
		i := make([]int32, 2)
		if _, err := mpi.Recv(c, i, 0, 8); err != nil || i[0] != -1 || i[1] != 2 {
			return fmt.Errorf("int32 recv = %v, %v", i, err)
		}
		z := make([]complex128, 1)
		if _, err := mpi.Recv(c, z, 0, 9); err != nil || z[0] != complex(1, -1) {
			return fmt.Errorf("complex recv = %v, %v", z, err)
		}
		return nil
	})
}

// TestNonOvertaking: messages from one sender on one communicator that match
// the same receive arrive in send order, whatever the size mix.
func TestNonOvertaking(t *testing.T) {
	const n = 200
	mpitest.Run(t, 3, func(c *mpi.Comm) error {
		switch c.Rank() {
		case 0, 1:
			for i := range n {
				buf := make([]int64, 1+(i%5)*1000)
				buf[0] = int64(i)
				if err := mpi.Send(c, buf, 2, i%3); err != nil {
					return err
				}
			}
			return nil
		}
		next := [2]int64{}
		buf := make([]int64, 5000)
		for range 2 * n {
			st, err := mpi.Recv(c, buf, mpi.AnySource, mpi.AnyTag)
			if err != nil {
				return err
			}
			if buf[0] != next[st.Source] {
				return fmt.Errorf("from rank %d got message %d; want %d", st.Source, buf[0], next[st.Source])
			}
			if want := int(buf[0]) % 3; st.Tag != want {
				return fmt.Errorf("message %d has tag %d; want %d", buf[0], st.Tag, want)
			}
			next[st.Source]++
		}
		return nil
	})
}

// TestPostedOrder: an arriving message matches the earliest posted receive
// that fits, across specific and wildcard receives.
func TestPostedOrder(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			// Wait until rank 1 has posted both receives.
			if _, err := mpi.Recv(c, []int{0}, 1, 99); err != nil {
				return err
			}
			if err := mpi.Send(c, []int{1}, 1, 5); err != nil {
				return err
			}
			return mpi.Send(c, []int{2}, 1, 5)
		}
		a, b := []int{0}, []int{0}
		ra, err := mpi.Irecv(c, a, 0, mpi.AnyTag)
		if err != nil {
			return err
		}
		rb, err := mpi.Irecv(c, b, mpi.AnySource, 5)
		if err != nil {
			return err
		}
		if err := mpi.Send(c, []int{0}, 0, 99); err != nil {
			return err
		}
		if err := mpi.WaitAll(ra, rb); err != nil {
			return err
		}
		if a[0] != 1 || b[0] != 2 {
			return fmt.Errorf("first posted got %d, second got %d; want 1 and 2", a[0], b[0])
		}
		return nil
	})
}

func TestZeroLength(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.Send[float64](c, nil, 1, 3)
		}
		st, err := mpi.Recv(c, []float64{}, 0, mpi.AnyTag)
		if err != nil {
			return err
		}
		if st.Count != 0 || st.Tag != 3 {
			return fmt.Errorf("status %+v; want count 0 tag 3", st)
		}
		return nil
	})
}

func TestErrors(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if err := mpi.Send(c, []int{1}, 2, 0); !errors.Is(err, mpi.ErrRank) {
			return fmt.Errorf("send to rank 2 of 2: %v; want ErrRank", err)
		}
		if err := mpi.Send(c, []int{1}, 0, -5); !errors.Is(err, mpi.ErrTag) {
			return fmt.Errorf("send tag -5: %v; want ErrTag", err)
		}
		if err := mpi.Send(c, []int{1}, 0, mpi.AnyTag); !errors.Is(err, mpi.ErrTag) {
			return fmt.Errorf("send AnyTag: %v; want ErrTag", err)
		}
		if _, err := mpi.Recv(c, []int{1}, -7, 0); !errors.Is(err, mpi.ErrRank) {
			return fmt.Errorf("recv from -7: %v; want ErrRank", err)
		}
		var me *mpi.Error
		if err := mpi.Send(c, []int{1}, 9, 4); !errors.As(err, &me) || me.Peer != 9 || me.Tag != 4 || me.Op != "send" {
			return fmt.Errorf("error %#v does not name op, peer and tag", err)
		}
		if c.Rank() == 0 {
			if err := mpi.Send(c, []float64{1, 2, 3, 4}, 1, 1); err != nil {
				return err
			}
			if err := mpi.Send(c, []float64{1, 2}, 1, 2); err != nil {
				return err
			}
			if err := mpi.Send(c, []float64{7}, 1, 3); err != nil {
				return err
			}
			return mpi.SendValue(c, "not numbers", 1, 4)
		}
		_, err := mpi.Recv(c, make([]float64, 2), 0, 1)
		if !errors.Is(err, mpi.ErrTruncate) || !strings.Contains(err.Error(), "4 elements") || !strings.Contains(err.Error(), "holds 2") {
			return fmt.Errorf("short buffer: %v; want ErrTruncate naming 4 and 2", err)
		}
		_, err = mpi.Recv(c, make([]int32, 4), 0, 2)
		if !errors.Is(err, mpi.ErrType) || !strings.Contains(err.Error(), "float64") || !strings.Contains(err.Error(), "int32") {
			return fmt.Errorf("type mismatch: %v; want ErrType naming float64 and int32", err)
		}
		// The bad receives consumed their messages: the next one is tag 3.
		got := []float64{0}
		if st, err := mpi.Recv(c, got, 0, mpi.AnyTag); err != nil || st.Tag != 3 || got[0] != 7 {
			return fmt.Errorf("after errors: %+v %v %v; want tag 3 value 7", st, got, err)
		}
		if _, err := mpi.Recv(c, make([]byte, 64), 0, 4); !errors.Is(err, mpi.ErrType) {
			return fmt.Errorf("value into []byte: %v; want ErrType", err)
		}
		return nil
	})
}

func TestProcNull(t *testing.T) {
	mpitest.Run(t, 1, func(c *mpi.Comm) error {
		if err := mpi.Send(c, []int{1}, mpi.ProcNull, 0); err != nil {
			return err
		}
		st, err := mpi.Recv(c, []int{5}, mpi.ProcNull, 0)
		if err != nil || st.Source != mpi.ProcNull || st.Count != 0 {
			return fmt.Errorf("recv ProcNull = %+v, %v", st, err)
		}
		return nil
	})
}

// TestSelf sends to the own rank, before and after the receive is posted.
func TestSelf(t *testing.T) {
	mpitest.Run(t, 1, func(c *mpi.Comm) error {
		if err := mpi.Send(c, []uint16{42}, 0, 1); err != nil {
			return err
		}
		got := []uint16{0}
		if _, err := mpi.Recv(c, got, 0, 1); err != nil || got[0] != 42 {
			return fmt.Errorf("self recv = %v, %v", got, err)
		}
		rq, err := mpi.Irecv(c, got, 0, 2)
		if err != nil {
			return err
		}
		if err := mpi.Send(c, []uint16{43}, 0, 2); err != nil {
			return err
		}
		if _, err := rq.Wait(); err != nil || got[0] != 43 {
			return fmt.Errorf("self irecv = %v, %v", got, err)
		}
		return nil
	})
}

// TestSsend: a synchronous send does not complete before the receive is
// posted, and does once it is.
func TestSsend(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			rq, err := mpi.Issend(c, []int{7}, 1, 1)
			if err != nil {
				return err
			}
			// Rank 1 posts its receive only after our "go" below.
			if done, _, _ := rq.Test(); done {
				return errors.New("Issend completed before the receiver posted a receive")
			}
			if err := mpi.Send(c, []int{0}, 1, 2); err != nil {
				return err
			}
			if _, err := rq.Wait(); err != nil {
				return err
			}
			return mpi.Ssend(c, []int{8}, 1, 3)
		}
		if _, err := mpi.Recv(c, []int{0}, 0, 2); err != nil {
			return err
		}
		got := []int{0}
		if _, err := mpi.Recv(c, got, 0, 1); err != nil || got[0] != 7 {
			return fmt.Errorf("ssend recv = %v, %v", got, err)
		}
		if _, err := mpi.Recv(c, got, 0, 3); err != nil || got[0] != 8 {
			return fmt.Errorf("ssend recv = %v, %v", got, err)
		}
		return nil
	})
}

func TestProbe(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.Send(c, make([]int16, 37), 1, 11)
		}
		st, err := mpi.Probe(c, mpi.AnySource, mpi.AnyTag)
		if err != nil {
			return err
		}
		if st.Source != 0 || st.Tag != 11 || st.Count != 37 {
			return fmt.Errorf("probe = %+v; want source 0 tag 11 count 37", st)
		}
		if _, ok, err := mpi.Iprobe(c, 0, 11); !ok || err != nil {
			return fmt.Errorf("iprobe after probe = %v, %v; want true", ok, err)
		}
		buf := make([]int16, st.Count)
		if _, err := mpi.Recv(c, buf, st.Source, st.Tag); err != nil {
			return err
		}
		if _, ok, err := mpi.Iprobe(c, 0, 11); ok || err != nil {
			return fmt.Errorf("iprobe after recv = %v, %v; want false", ok, err)
		}
		return nil
	})
}

type config struct {
	Name  string
	Steps int
	Dims  []int
	Tags  map[string]float64
}

func TestValues(t *testing.T) {
	want := config{Name: "storm", Steps: 9, Dims: []int{3, 4}, Tags: map[string]float64{"dt": 0.5}}
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			if err := mpi.SendValue(c, want, 1, 0); err != nil {
				return err
			}
			return mpi.Send(c, []float64{1}, 1, 1)
		}
		var got config
		if _, err := mpi.RecvValue(c, &got, 0, 0); err != nil {
			return err
		}
		if got.Name != want.Name || got.Steps != want.Steps || len(got.Dims) != 2 || got.Dims[1] != 4 || got.Tags["dt"] != 0.5 {
			return fmt.Errorf("got %+v; want %+v", got, want)
		}
		var s string
		if _, err := mpi.RecvValue(c, &s, 0, 1); !errors.Is(err, mpi.ErrType) {
			return fmt.Errorf("numbers into RecvValue: %v; want ErrType", err)
		}
		return nil
	})
}

// TestCollectiveContextIsolated: traffic on the collective context never
// matches point-to-point receives, even with wildcards.
func TestCollectiveContextIsolated(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			if err := mpi.Send(c.Collective(), []int{1}, 1, 0); err != nil {
				return err
			}
			return mpi.Send(c, []int{2}, 1, 0)
		}
		got := []int{0}
		if _, err := mpi.Recv(c, got, mpi.AnySource, mpi.AnyTag); err != nil || got[0] != 2 {
			return fmt.Errorf("p2p recv got %v, %v; want 2 (not the collective message)", got, err)
		}
		if _, err := mpi.Recv(c.Collective(), got, 0, 0); err != nil || got[0] != 1 {
			return fmt.Errorf("collective recv got %v, %v; want 1", got, err)
		}
		return nil
	})
}

// TestConcurrentGoroutines: many goroutines of each rank send and receive on
// the same communicator at once; every message arrives exactly once.
func TestConcurrentGoroutines(t *testing.T) {
	const workers, per = 8, 50
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		peer := 1 - c.Rank()
		var wg sync.WaitGroup
		errs := make(chan error, 2*workers)
		seen := make([][]bool, workers)
		for w := range workers {
			seen[w] = make([]bool, per)
			wg.Add(2)
			go func() { // sender for tag w; joined by wg.Wait
				defer wg.Done()
				for i := range per {
					if err := mpi.Send(c, []int{w, i}, peer, w); err != nil {
						errs <- err
						return
					}
				}
			}()
			go func() { // receiver for tag w; joined by wg.Wait
				defer wg.Done()
				buf := []int{0, 0}
				for i := range per {
					if _, err := mpi.Recv(c, buf, peer, w); err != nil {
						errs <- err
						return
					}
					if buf[0] != w || buf[1] != i {
						errs <- fmt.Errorf("tag %d: got %v; want [%d %d]", w, buf, w, i)
						return
					}
					seen[w][i] = true
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
}

// TestAbortUnblocks: a rank blocked in Recv returns ErrAborted when another
// rank aborts the job, instead of hanging.
func TestAbortUnblocks(t *testing.T) {
	err := mpitest.Go(t.Context(), 3, func(c *mpi.Comm) error {
		if c.Rank() == 2 {
			// Abort only after both other ranks are blocked in Recv: they
			// each told us they are about to block.
			for range 2 {
				if _, err := mpi.Recv(c, []int{0}, mpi.AnySource, 1); err != nil {
					return err
				}
			}
			return c.Abort(4, "giving up")
		}
		if err := mpi.Send(c, []int{0}, 2, 1); err != nil {
			return err
		}
		_, err := mpi.Recv(c, []int{0}, 2, 0)
		if !errors.Is(err, mpi.ErrAborted) {
			return fmt.Errorf("blocked recv returned %v; want ErrAborted", err)
		}
		return err
	})
	if !errors.Is(err, mpi.ErrAborted) || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("job error = %v; want ErrAborted naming the message", err)
	}
}

// TestWaitContextCancels: an unmatched receive is withdrawn when the wait's
// context ends, and a later message is not lost to it.
func TestWaitContextCancels(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			if _, err := mpi.Recv(c, []int{0}, 1, 1); err != nil {
				return err
			}
			return mpi.Send(c, []int{5}, 1, 0)
		}
		buf := []int{0}
		rq, err := mpi.Irecv(c, buf, 0, 0)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := rq.WaitContext(ctx); !errors.Is(err, context.Canceled) {
			return fmt.Errorf("WaitContext = %v; want context.Canceled", err)
		}
		if err := mpi.Send(c, []int{0}, 0, 1); err != nil {
			return err
		}
		got := []int{0}
		if _, err := mpi.Recv(c, got, 0, 0); err != nil || got[0] != 5 || buf[0] != 0 {
			return fmt.Errorf("after cancel: got %v, cancelled buffer %v, %v; want 5 and untouched", got, buf, err)
		}
		return nil
	})
}

func TestWaitAny(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			return mpi.Send(c, []int{9}, 1, 2)
		}
		a, b := []int{0}, []int{0}
		ra, _ := mpi.Irecv(c, a, 0, 1)
		rb, _ := mpi.Irecv(c, b, 0, 2)
		i, st, err := mpi.WaitAny(nil, ra, rb)
		if err != nil || i != 2 || st.Tag != 2 || b[0] != 9 {
			return fmt.Errorf("WaitAny = %d %+v %v; want index 2 tag 2", i, st, err)
		}
		if done, _, _ := ra.Test(); done {
			return errors.New("unmatched receive reports done")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		_, err = ra.WaitContext(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("WaitContext = %v; want DeadlineExceeded", err)
		}
		return nil
	})
}

func TestFinalize(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if err := c.Finalize(); err != nil {
			return err
		}
		if err := c.Finalize(); err != nil {
			return fmt.Errorf("second Finalize: %v", err)
		}
		if err := mpi.Send(c, []int{1}, 0, 0); !errors.Is(err, mpi.ErrFinalized) {
			return fmt.Errorf("send after Finalize: %v; want ErrFinalized", err)
		}
		return nil
	})
}

func TestSingleton(t *testing.T) {
	for _, k := range []string{"GORUN_RENDEZVOUS", "GORUN_RANK", "GORUN_SIZE"} {
		t.Setenv(k, "")
	}
	c, err := mpi.Init(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c.Rank() != 0 || c.Size() != 1 {
		t.Fatalf("singleton world is rank %d of %d; want 0 of 1", c.Rank(), c.Size())
	}
	if err := mpi.Send(c, []int{3}, 0, 0); err != nil {
		t.Fatal(err)
	}
	got := []int{0}
	if _, err := mpi.Recv(c, got, 0, 0); err != nil || got[0] != 3 {
		t.Fatalf("singleton self message = %v, %v", got, err)
	}
	if err := c.Finalize(); err != nil {
		t.Fatal(err)
	}
}

// TestWaitAfterWaitAny: a request that WaitAny watched but did not pick
// stays pending, and a later Wait blocks until its message arrives.
func TestWaitAfterWaitAny(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			if _, err := mpi.Recv(c, []int{0}, 1, 3); err != nil { // receives posted
				return err
			}
			if err := mpi.Send(c, []int{20}, 1, 2); err != nil {
				return err
			}
			if _, err := mpi.Recv(c, []int{0}, 1, 4); err != nil { // WaitAny returned
				return err
			}
			return mpi.Send(c, []int{10}, 1, 1)
		}
		a, b := []int{0}, []int{0}
		ra, _ := mpi.Irecv(c, a, 0, 1)
		rb, _ := mpi.Irecv(c, b, 0, 2)
		if err := mpi.Send(c, []int{0}, 0, 3); err != nil {
			return err
		}
		if i, _, err := mpi.WaitAny(ra, rb); i != 1 || err != nil || b[0] != 20 {
			return fmt.Errorf("WaitAny = %d, %v, b=%v; want 1 and 20", i, err, b)
		}
		if err := mpi.Send(c, []int{0}, 0, 4); err != nil {
			return err
		}
		st, err := ra.Wait()
		if err != nil || a[0] != 10 || st.Tag != 1 {
			return fmt.Errorf("Wait after WaitAny = %+v, %v, a=%v; want tag 1 and 10", st, err, a)
		}
		return nil
	})
}

// TestMpitestFailureUnblocks: when one rank returns an error, ranks blocked
// waiting for it are aborted, so the job ends instead of hanging.
func TestMpitestFailureUnblocks(t *testing.T) {
	boom := errors.New("boom")
	err := mpitest.Go(t.Context(), 3, func(c *mpi.Comm) error {
		if c.Rank() == 1 {
			return boom
		}
		_, err := mpi.Recv(c, []int{0}, 1, 0)
		return err
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "rank 1") {
		t.Fatalf("job error = %v; want rank 1's error", err)
	}
}

// TestSendrecvInPlace exchanges one buffer used as both send and receive
// buffer (MPI_Sendrecv_replace): the value sent must be the one the buffer
// held before the call, never the peer's message that lands in it.
func TestSendrecvInPlace(t *testing.T) {
	const rounds = 2000
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		me, peer := c.Rank(), 1-c.Rank()
		buf := make([]int64, 4)
		for i := range rounds {
			for j := range buf {
				buf[j] = int64(i*10 + me)
			}
			st, err := mpi.Sendrecv(c, buf, peer, 3, buf, peer, 3)
			if err != nil {
				return err
			}
			if st.Count != len(buf) || st.Source != peer {
				return fmt.Errorf("round %d: status %+v", i, st)
			}
			for j, v := range buf {
				if want := int64(i*10 + peer); v != want {
					return fmt.Errorf("round %d: buf[%d] = %d; want %d (the peer's value)", i, j, v, want)
				}
			}
		}
		return nil
	})
}

// TestLargeUnexpected receives large messages that arrived before their
// receives were posted, out of order, after a large Go value that arrived
// the same way: the pooled payload memory of one must never show up in
// another, nor in the value the application now owns.
func TestLargeUnexpected(t *testing.T) {
	const n = 200 << 10 // above the size whose memory is kept per record
	want := strings.Repeat("v", n)
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if c.Rank() == 0 {
			if err := mpi.SendValue(c, want, 1, 9); err != nil {
				return err
			}
			if _, err := mpi.Recv(c, []byte{}, 1, 10); err != nil { // rank 1 has the value
				return err
			}
			for tag := range 4 {
				buf := make([]byte, n)
				for i := range buf {
					buf[i] = byte(tag*31 + i)
				}
				if err := mpi.Send(c, buf, 1, tag); err != nil {
					return err
				}
			}
			return nil
		}
		if _, err := mpi.Probe(c, 0, 9); err != nil { // unexpected when received
			return err
		}
		var v string
		if _, err := mpi.RecvValue(c, &v, 0, 9); err != nil {
			return err
		}
		if err := mpi.Send(c, []byte{}, 0, 10); err != nil {
			return err
		}
		if _, err := mpi.Probe(c, 0, 3); err != nil { // all four are here
			return err
		}
		for _, tag := range []int{3, 1, 0, 2} {
			buf := make([]byte, n)
			if _, err := mpi.Recv(c, buf, 0, tag); err != nil {
				return err
			}
			for i, b := range buf {
				if b != byte(tag*31+i) {
					return fmt.Errorf("tag %d: byte %d = %d; want %d", tag, i, b, byte(tag*31+i))
				}
			}
		}
		if v != want {
			return fmt.Errorf("the %d-byte value changed after later messages arrived", len(v))
		}
		return nil
	})
}

// TestArgumentBoundaries checks the edges of the one-branch argument tests
// on the send and receive paths: every value just outside the valid range
// is refused with the right error, every value just inside is accepted,
// and the wildcards are accepted only where MPI allows them.
func TestArgumentBoundaries(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		size := c.Size()
		for _, dst := range []int{size, size + 1, -3, mpi.AnySource, math.MinInt, math.MaxInt} {
			if err := mpi.Send(c, []int{1}, dst, 0); !errors.Is(err, mpi.ErrRank) {
				return fmt.Errorf("send to %d: %v; want ErrRank", dst, err)
			}
			if dst == mpi.AnySource {
				continue
			}
			// Irecv: a receive wrongly accepted would block in Recv.
			if _, err := mpi.Irecv(c, []int{1}, dst, 0); !errors.Is(err, mpi.ErrRank) {
				return fmt.Errorf("irecv from %d: %v; want ErrRank", dst, err)
			}
		}
		for _, tag := range []int{-2, mpi.MaxTag + 1, math.MinInt, math.MaxInt} {
			if err := mpi.Send(c, []int{1}, 0, tag); !errors.Is(err, mpi.ErrTag) {
				return fmt.Errorf("send tag %d: %v; want ErrTag", tag, err)
			}
			if _, err := mpi.Irecv(c, []int{1}, 0, tag); !errors.Is(err, mpi.ErrTag) {
				return fmt.Errorf("irecv tag %d: %v; want ErrTag", tag, err)
			}
		}
		// Inside the edges: the highest rank and tag, and both wildcards.
		me, last := c.Rank(), size-1
		if err := mpi.Send(c, []int{7}, last, mpi.MaxTag); err != nil {
			return fmt.Errorf("send to rank %d with MaxTag: %v", last, err)
		}
		if me == last {
			buf := []int{0}
			for range size {
				st, err := mpi.Recv(c, buf, mpi.AnySource, mpi.AnyTag)
				if err != nil || buf[0] != 7 || st.Tag != mpi.MaxTag {
					return fmt.Errorf("recv any/any = %+v %v, %v; want 7 with MaxTag", st, buf, err)
				}
			}
		}
		return nil
	})
}
