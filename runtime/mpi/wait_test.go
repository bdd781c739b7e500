package mpi

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// TestRequestSize: a Request is one allocation per Irecv; it stays in the
// 64-byte size class.
func TestRequestSize(t *testing.T) {
	if n := unsafe.Sizeof(Request{}); n > 64 {
		t.Errorf("Request is %d bytes; keep it at most 64 (see its doc)", n)
	}
}

// heldEndpoint is a transport without a reader goroutine: frames sent to it
// wait until Poll hands them to the sink, so a test sees exactly which
// calls drive progress.
type heldEndpoint struct {
	sink transport.Sink
	mu   sync.Mutex
	held []heldFrame
}

type heldFrame struct {
	h transport.Header
	p []byte
}

func (e *heldEndpoint) Send(h transport.Header, p []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.held = append(e.held, heldFrame{h, slices.Clone(p)})
	return nil
}

func (e *heldEndpoint) Close() error { return nil }

func (e *heldEndpoint) Poll() bool {
	e.mu.Lock()
	fs := e.held
	e.held = nil
	e.mu.Unlock()
	for _, f := range fs {
		buf := e.sink.Buffer(f.h)
		copy(buf, f.p)
		e.sink.Deliver(f.h, buf)
	}
	return len(fs) > 0
}

// heldPair builds two worlds of one job in this process; what rank 1 sends
// to rank 0 waits in rank 0's heldEndpoint until something polls it.
func heldPair(t *testing.T) (w0, w1 *world, ep *heldEndpoint) {
	w0, w1 = newWorld(0, 2), newWorld(1, 2)
	ep = &heldEndpoint{sink: w0.eng}
	w0.addEndpoint(ep)
	w0.setRoutes(ep, "held", nil)
	w1.addEndpoint(ep) // rank 1's sends land in rank 0's endpoint
	w1.setRoutes(ep, "held", nil)
	t.Cleanup(w0.close)
	t.Cleanup(w1.close)
	return w0, w1, ep
}

// TestIprobeDrivesProgress: a loop of Iprobe, as MPI programs write to
// overlap work with waiting, finds a message that has arrived at a
// transport without waiting for the transport's background reader: Iprobe
// polls, as Test does.
func TestIprobeDrivesProgress(t *testing.T) {
	w0, w1, ep := heldPair(t)
	if err := Send(w1.comm, []int32{7}, 0, 3); err != nil {
		t.Fatal(err)
	}
	if len(ep.held) != 1 {
		t.Fatalf("%d frames held, want 1", len(ep.held))
	}
	st, ok, err := Iprobe(w0.comm, 1, 3)
	if err != nil || !ok {
		t.Fatalf("Iprobe after the message arrived: found %v, err %v; want found", ok, err)
	}
	if st.Source != 1 || st.Tag != 3 || st.Count != 1 {
		t.Fatalf("Iprobe status %+v, want source 1, tag 3, count 1", st)
	}
	got := []int32{0}
	if _, err := Recv(w0.comm, got, 1, 3); err != nil || got[0] != 7 {
		t.Fatalf("Recv after Iprobe: %v, %v; want [7]", got, err)
	}
}

// TestWaitAnyDrivesProgress: WaitAny polls the transports while it waits,
// as Wait does, rather than only waiting for a transport's reader to hand
// the message over (this transport has none: without polling WaitAny would
// never return).
func TestWaitAnyDrivesProgress(t *testing.T) {
	w0, w1, _ := heldPair(t)
	other, err := Irecv(w0.comm, make([]int32, 1), 1, 4) // never sent
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int32, 1)
	r, err := Irecv(w0.comm, got, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := Send(w1.comm, []int32{9}, 0, 3); err != nil {
		t.Fatal(err)
	}
	type result struct {
		i   int
		err error
	}
	done := make(chan result, 1)
	go func() { // ends when WaitAny returns; joined below or by the timeout's Fatal
		i, _, err := WaitAny(other, r)
		done <- result{i, err}
	}()
	select {
	case res := <-done:
		if res.err != nil || res.i != 1 || got[0] != 9 {
			t.Fatalf("WaitAny = %d, %v, received %v; want 1, nil, [9]", res.i, res.err, got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitAny did not return for a message held by a transport that only delivers when polled")
	}
}

// TestWaitContextDrivesProgress: WaitContext polls the transports while it
// waits, as Wait does (this transport delivers only when polled).
func TestWaitContextDrivesProgress(t *testing.T) {
	w0, w1, _ := heldPair(t)
	got := make([]int32, 1)
	r, err := Irecv(w0.comm, got, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := Send(w1.comm, []int32{5}, 0, 3); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := r.WaitContext(ctx); err != nil || got[0] != 5 {
		t.Fatalf("WaitContext = %v, received %v; want nil, [5]", err, got)
	}
}

// streamingPoller is a transport whose Poll always reports progress, as
// one does while a payload that never ends streams in.
type streamingPoller struct{}

func (streamingPoller) Send(transport.Header, []byte) error { return nil }
func (streamingPoller) Close() error                        { return nil }
func (streamingPoller) Poll() bool                          { return true }

// TestWaitContextDeadlineUnderTraffic: WaitContext ends at its context's
// deadline even while a transport keeps making progress. Progress restarts
// the spinning budget, so the spinning must look at the context itself, or
// it would go on for as long as the traffic does.
func TestWaitContextDeadlineUnderTraffic(t *testing.T) {
	w0, _, _ := heldPair(t)
	w0.addEndpoint(streamingPoller{})
	r, err := Irecv(w0.comm, make([]int32, 1), 1, 3) // never sent
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { // ends when WaitContext returns; joined below or by the guard's Fatal
		_, err := r.WaitContext(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitContext = %v; want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitContext spun past its 50 ms deadline while a transport kept making progress")
	}
}

// TestReleaserBatches: WaitAll's batched release returns every request,
// cleared, to the free list of its own world, in batches of any length and
// with worlds interleaved.
func TestReleaserBatches(t *testing.T) {
	w1, w2 := &world{}, &world{}
	w1.eng, w2.eng = newEngine(w1, 1), newEngine(w2, 1)
	c1, c2 := &Comm{w: w1}, &Comm{w: w2}
	var b releaser
	want := map[*world]int{}
	for i := range 150 {
		c := c1
		if (i/40)%2 == 1 || i%7 == 0 {
			c = c2
		}
		r := &request{done: make(chan struct{}, 1), comm: c, tag: i}
		r.done <- struct{}{} // an unconsumed token, which release drops
		b.add(r)
		want[c.w]++
	}
	b.add(nil)
	b.flush()
	for _, w := range []*world{w1, w2} {
		if got := len(w.eng.requests.free); got != want[w] {
			t.Errorf("a world got %d requests back, want %d", got, want[w])
		}
		for _, r := range w.eng.requests.free {
			if r.comm != nil || r.tag != 0 || len(r.done) != 0 || cap(r.done) != 1 {
				t.Fatalf("a released request was not cleared: %+v", r)
			}
		}
	}
	if b.n != 0 {
		t.Errorf("%d requests left queued after flush", b.n)
	}
}
