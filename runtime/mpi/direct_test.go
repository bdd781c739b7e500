//go:build linux

package mpi

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// countDirect counts the receives that take the direct path for the rest
// of the test.
func countDirect(t *testing.T) *atomic.Int64 {
	var n atomic.Int64
	tookDirect = func() { n.Add(1) }
	t.Cleanup(func() { tookDirect = nil })
	return &n
}

// runRank runs f as rank 1's side of a test in its own goroutine and
// returns a function that waits for it and fails the test with its error.
func runRank(t *testing.T, f func() error) func() {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	return func() {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecvDirectPingPong bounces a counter between two ranks over shared
// memory: every reply holds what was sent plus one, with the right status,
// and blocking receives that wait for it take the direct path.
func TestRecvDirectPingPong(t *testing.T) {
	direct := countDirect(t)
	ws := shmPair(t)
	c0, c1 := ws[0].comm, ws[1].comm
	const rounds = 2000
	wait := runRank(t, func() error {
		v := []int64{0}
		for range rounds {
			st, err := Recv(c1, v, 0, 5)
			if err != nil {
				return err
			}
			if st.Source != 0 || st.Tag != 5 || st.Count != 1 {
				return errors.New("echo side: wrong status")
			}
			v[0]++
			if err := Send(c1, v, 0, 6); err != nil {
				return err
			}
		}
		return nil
	})
	v := []int64{0}
	for i := range int64(rounds) {
		v[0] = 2 * i
		if err := Send(c0, v, 1, 5); err != nil {
			t.Fatal(err)
		}
		st, err := Recv(c0, v, 1, AnyTag)
		if err != nil {
			t.Fatal(err)
		}
		if v[0] != 2*i+1 || st.Source != 1 || st.Tag != 6 || st.Count != 1 {
			t.Fatalf("round %d: got %d with status %+v, want %d from rank 1 tag 6", i, v[0], st, 2*i+1)
		}
	}
	wait()
	if direct.Load() == 0 {
		t.Fatal("no receive took the direct path")
	}
}

// TestRecvDirectYieldsToPostedReceive: a receive posted earlier (Irecv)
// matches first, even when the later blocking Recv could take the next
// frame straight from the ring.
func TestRecvDirectYieldsToPostedReceive(t *testing.T) {
	ws := shmPair(t)
	c0, c1 := ws[0].comm, ws[1].comm
	for i := range int32(300) {
		first, second := []int32{-1}, []int32{-1}
		q, err := Irecv(c1, first, 0, 7)
		if err != nil {
			t.Fatal(err)
		}
		if err := Send(c0, []int32{2 * i}, 1, 7); err != nil {
			t.Fatal(err)
		}
		if err := Send(c0, []int32{2*i + 1}, 1, 7); err != nil {
			t.Fatal(err)
		}
		if _, err := Recv(c1, second, 0, 7); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Wait(); err != nil {
			t.Fatal(err)
		}
		if first[0] != 2*i || second[0] != 2*i+1 {
			t.Fatalf("round %d: Irecv got %d, Recv got %d; want %d then %d", i, first[0], second[0], 2*i, 2*i+1)
		}
	}
}

// TestRecvDirectAfterUnexpected: once a message waits in the engine as
// unexpected (here: Probe made it arrive), the blocking receives that
// follow still get the messages in the order they were sent.
func TestRecvDirectAfterUnexpected(t *testing.T) {
	ws := shmPair(t)
	c0, c1 := ws[0].comm, ws[1].comm
	const n = 64
	for round := range 20 {
		for i := range int32(n) {
			if err := Send(c0, []int32{i}, 1, 3); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Probe(c1, 0, 3); err != nil {
			t.Fatal(err)
		}
		v := []int32{-1}
		for i := range int32(n) {
			if _, err := Recv(c1, v, 0, 3); err != nil {
				t.Fatal(err)
			}
			if v[0] != i {
				t.Fatalf("round %d: receive %d got message %d", round, i, v[0])
			}
		}
	}
}

// TestRecvDirectOtherTags: a frame for another tag at the head of the ring
// is left for later; receives by tag and AnyTag get what MPI says.
func TestRecvDirectOtherTags(t *testing.T) {
	ws := shmPair(t)
	c0, c1 := ws[0].comm, ws[1].comm
	for _, m := range []struct{ v, tag int }{{10, 1}, {20, 2}, {30, 1}} {
		if err := Send(c0, []int{m.v}, 1, m.tag); err != nil {
			t.Fatal(err)
		}
	}
	v := []int{0}
	for _, want := range []struct{ tag, v, gotTag int }{{2, 20, 2}, {AnyTag, 10, 1}, {1, 30, 1}} {
		st, err := Recv(c1, v, 0, want.tag)
		if err != nil {
			t.Fatal(err)
		}
		if v[0] != want.v || st.Tag != want.gotTag {
			t.Fatalf("Recv(tag %d) got %d tag %d, want %d tag %d", want.tag, v[0], st.Tag, want.v, want.gotTag)
		}
	}
}

// TestRecvDirectErrors: a receive buffer too small, or of another element
// type, fails as on the general path and consumes the message; the next
// message is received normally.
func TestRecvDirectErrors(t *testing.T) {
	ws := shmPair(t)
	c0, c1 := ws[0].comm, ws[1].comm
	wait := runRank(t, func() error {
		for _, b := range [][]float64{{1, 2, 3, 4}, {5}, {6}} {
			if err := Send(c0, b, 1, 9); err != nil {
				return err
			}
		}
		return nil
	})
	if _, err := Recv(c1, make([]float64, 2), 0, 9); !errors.Is(err, ErrTruncate) {
		t.Fatalf("short buffer: got %v, want ErrTruncate", err)
	}
	if _, err := Recv(c1, make([]int64, 1), 0, 9); !errors.Is(err, ErrType) {
		t.Fatalf("wrong type: got %v, want ErrType", err)
	}
	v := []float64{0}
	if _, err := Recv(c1, v, 0, 9); err != nil || v[0] != 6 {
		t.Fatalf("after the errors: got %v, %v; want 6", v[0], err)
	}
	wait()
}

// TestRecvDirectConcurrent: goroutines receive from one peer at once, by
// tag, while another waits on Irecvs: each tag's messages arrive exactly
// once and in order.
func TestRecvDirectConcurrent(t *testing.T) {
	ws := shmPair(t)
	c0, c1 := ws[0].comm, ws[1].comm
	const tags, n = 5, 400
	var wg sync.WaitGroup
	errs := make(chan error, tags)
	for tag := range tags {
		wg.Go(func() {
			v := []int64{-1}
			for i := range int64(n) {
				if tag == tags-1 { // this one posts first and waits
					q, err := Irecv(c1, v, 0, tag)
					if err != nil {
						errs <- err
						return
					}
					if _, err := q.Wait(); err != nil {
						errs <- err
						return
					}
				} else if _, err := Recv(c1, v, 0, tag); err != nil {
					errs <- err
					return
				}
				if v[0] != i {
					t.Errorf("tag %d: message %d holds %d", tag, i, v[0])
					return
				}
			}
		})
	}
	for i := range int64(n) {
		for tag := range tags {
			if err := Send(c0, []int64{i}, 1, tag); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestSendrecvShm: two ranks exchange with Sendrecv at once, small
// messages (sent first, received directly) and large ones (received into a
// posted request), and each gets the other's data every round.
func TestSendrecvShm(t *testing.T) {
	ws := shmPair(t)
	for _, n := range []int{1, directMax / 8, directMax/8 + 1, 64 << 10} {
		var wg sync.WaitGroup
		for r := range 2 {
			wg.Go(func() {
				c := ws[r].comm
				out, in := make([]float64, n), make([]float64, n)
				for round := range 50 {
					for i := range out {
						out[i] = float64(1000*round + 10*r + i%7)
					}
					st, err := Sendrecv(c, out, 1-r, round, in, 1-r, round)
					if err != nil {
						t.Error(err)
						return
					}
					if st.Count != n || st.Source != 1-r {
						t.Errorf("%d elements, rank %d round %d: status %+v", n, r, round, st)
						return
					}
					for i, v := range in {
						if want := float64(1000*round + 10*(1-r) + i%7); v != want {
							t.Errorf("%d elements, rank %d round %d: in[%d] = %v, want %v", n, r, round, i, v, want)
							return
						}
					}
				}
			})
		}
		wg.Wait()
	}
}

// TestRecvDirectAllocs pins zero allocations per small Send+Recv and
// Sendrecv over shared memory in one goroutine, the direct path included
// (its waiting closure must stay on the stack).
func TestRecvDirectAllocs(t *testing.T) {
	direct := countDirect(t)
	ws := shmPair(t)
	c0, c1 := ws[0].comm, ws[1].comm
	out, in := lineBuf[float64](3), lineBuf[float64](3)
	sendRecv := func() {
		if err := Send(c0, out, 1, 5); err != nil {
			t.Fatal(err)
		}
		if _, err := Recv(c1, in, 0, 5); err != nil {
			t.Fatal(err)
		}
	}
	sendrecv := func() {
		// Rank 1's message is already there when rank 0 receives.
		if err := Send(c1, out, 0, 6); err != nil {
			t.Fatal(err)
		}
		if _, err := Sendrecv(c0, out, 1, 6, in, 1, 6); err != nil {
			t.Fatal(err)
		}
		if _, err := Recv(c1, in, 0, 6); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		sendRecv()
		sendrecv()
	}
	if n := testing.AllocsPerRun(1000, sendRecv); n != 0 {
		t.Errorf("Send+Recv of 3 float64 over shm allocates %.1f times; want 0", n)
	}
	if n := testing.AllocsPerRun(1000, sendrecv); n != 0 {
		t.Errorf("Sendrecv of 3 float64 over shm allocates %.1f times; want 0", n)
	}
	if direct.Load() == 0 {
		t.Error("no receive took the direct path")
	}
}
