package mpi_test

import (
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// TestSteadyStateAllocs pins zero allocations per small blocking send and
// receive once the runtime has warmed up (the self transport here; each
// transport's own tests check its side).
func TestSteadyStateAllocs(t *testing.T) {
	c := singleton(t)
	out, in := []float64{1, 2, 3}, make([]float64, 3)
	step := func() {
		if err := mpi.Send(c, out, 0, 5); err != nil {
			t.Fatal(err)
		}
		if _, err := mpi.Recv(c, in, 0, 5); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Errorf("Send+Recv of 3 float64 allocates %.1f times; want 0", n)
	}
}

// TestSteadyStateAllocsNonBlocking pins the allocations of the forms
// collectives are built from: Sendrecv none, Irecv+Wait less than one (the
// Requests Irecv returns come in blocks of 31; its internal state goes back
// to a free list once waited for).
func TestSteadyStateAllocsNonBlocking(t *testing.T) {
	c := singleton(t)
	out, in := []float64{1, 2, 3}, make([]float64, 3)
	sendrecv := func() {
		if _, err := mpi.Sendrecv(c, out, 0, 5, in, 0, 5); err != nil {
			t.Fatal(err)
		}
	}
	irecv := func() { irecvSendWait(t, c, in, out, 6) }
	for range 10 {
		sendrecv()
		irecv()
	}
	if n := testing.AllocsPerRun(1000, sendrecv); n != 0 {
		t.Errorf("Sendrecv of 3 float64 allocates %.1f times; want 0", n)
	}
	if n := testing.AllocsPerRun(1000, irecv); n >= 1 {
		t.Errorf("Irecv+Send+Wait of 3 float64 allocates %.1f times; want less than 1 (a block of Requests every 31 calls)", n)
	}
}

// TestWaitAllAllocs: a window of Irecvs completed with WaitAll allocates
// only the blocks its Requests come from, 31 to a block, and nothing else
// (WaitAll returned a slice of statuses once, and each Request was an
// allocation of its own: 65 allocations a window of 64).
func TestWaitAllAllocs(t *testing.T) {
	c := singleton(t)
	const window = 64
	out, in := []float64{1}, make([]float64, 1)
	reqs := make([]*mpi.Request, window)
	step := func() {
		for i := range reqs {
			if err := mpi.Send(c, out, 0, 7); err != nil {
				t.Fatal(err)
			}
			r, err := mpi.Irecv(c, in, 0, 7)
			if err != nil {
				t.Fatal(err)
			}
			reqs[i] = r
		}
		if err := mpi.WaitAll(reqs...); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		step()
	}
	if n := testing.AllocsPerRun(100, step); n > 3 {
		t.Errorf("a window of %d Irecvs and a WaitAll allocates %.1f times; want at most 3 (blocks of 31 Requests)", window, n)
	}
}

// singleton returns the world of a rank started without a launcher (a
// world of one, over the self transport); Cleanup finalizes it.
func singleton(tb testing.TB) *mpi.Comm {
	tb.Setenv("GORUN_RENDEZVOUS", "")
	c, err := mpi.Init(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Finalize() })
	return c
}

// BenchmarkSelf times a small message to oneself: "unexpected" sends
// before its receive is posted, "expected" posts the receive first, as in
// a ping-pong.
func BenchmarkSelf(b *testing.B) {
	c := singleton(b)
	out, in := make([]byte, 8), make([]byte, 8)
	b.Run("unexpected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := mpi.Send(c, out, 0, 1); err != nil {
				b.Fatal(err)
			}
			if _, err := mpi.Recv(c, in, 0, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("expected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			irecvSendWait(b, c, in, out, 1)
		}
	})
}

// irecvSendWait posts a receive from c's own rank, sends out to it and
// waits: a message on the expected path, as in a ping-pong.
func irecvSendWait[T mpi.Numeric](tb testing.TB, c *mpi.Comm, in, out []T, tag int) {
	r, err := mpi.Irecv(c, in, c.Rank(), tag)
	if err != nil {
		tb.Fatal(err)
	}
	if err := mpi.Send(c, out, c.Rank(), tag); err != nil {
		tb.Fatal(err)
	}
	if _, err := r.Wait(); err != nil {
		tb.Fatal(err)
	}
}
