//go:build linux

package shm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/transporttest"
)

var jobSeq atomic.Int64

// newJob returns a job id unique to this process and call.
func newJob() string { return fmt.Sprintf("t%d-%d", os.Getpid(), jobSeq.Add(1)) }

// makeEndpoints creates, attaches and unlinks one endpoint per sink (rank i
// gets sinks[i]) in dir; Cleanup closes them.
func makeEndpoints(t testing.TB, dir string, sinks []transport.Sink) []*Endpoint {
	t.Helper()
	job := newJob()
	local := make([]int, len(sinks))
	for i := range local {
		local[i] = i
	}
	eps := make([]*Endpoint, 0, len(sinks))
	t.Cleanup(func() {
		for _, ep := range eps {
			ep.Close()
		}
	})
	for i, s := range sinks {
		ep, err := Create(Config{Job: job, Rank: i, Local: local, Sink: s, Dir: dir})
		if err != nil {
			t.Fatalf("Create rank %d: %v", i, err)
		}
		eps = append(eps, ep)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, ep := range eps {
		if err := ep.Attach(ctx); err != nil {
			t.Fatalf("Attach rank %d: %v", i, err)
		}
	}
	for i, ep := range eps {
		if err := ep.Unlink(); err != nil {
			t.Fatalf("Unlink rank %d: %v", i, err)
		}
	}
	assertEmpty(t, dir)
	return eps
}

// assertEmpty fails t if dir holds any file.
func assertEmpty(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("file left in %s: %s", dir, e.Name())
	}
}

func factory(t *testing.T, sinks []transport.Sink) []transport.Endpoint {
	dir := t.TempDir()
	eps := makeEndpoints(t, dir, sinks)
	t.Cleanup(func() { assertEmpty(t, dir) }) // runs after the suite's Close
	out := make([]transport.Endpoint, len(eps))
	for i, ep := range eps {
		out[i] = ep
	}
	return out
}

// refuseCMA makes process_vm_readv fail as under a strict ptrace policy.
func refuseCMA(int, []unix.Iovec, []unix.RemoteIovec, uint) (int, error) { return 0, unix.EPERM }

// withHook sets *p to v for the duration of the test.
func withHook[T any](t testing.TB, p *T, v T) {
	old := *p
	*p = v
	t.Cleanup(func() { *p = old })
}

func TestConformance(t *testing.T) {
	t.Run("cma", func(t *testing.T) { transporttest.Run(t, factory) })
	t.Run("fallback", func(t *testing.T) {
		withHook(t, &processVMReadv, refuseCMA)
		withHook(t, &processVMWritev, refuseCMA)
		transporttest.Run(t, factory)
	})
	t.Run("tiny-eager", func(t *testing.T) {
		// Most frames go through the large-message path.
		withHook(t, &eagerLimit, 64)
		transporttest.Run(t, factory)
	})
	// Split copies in many small (and odd) chunks.
	t.Run("split", func(t *testing.T) {
		withHook(t, &eagerLimit, 64)
		withHook(t, &splitMin, 65)
		withHook(t, &splitChunk, 1000)
		withHook(t, &splitChunkMin, 1000)
		transporttest.Run(t, factory)
	})
	t.Run("split-no-writev", func(t *testing.T) {
		// The sender cannot help: the receiver reads every chunk.
		withHook(t, &eagerLimit, 64)
		withHook(t, &splitMin, 65)
		withHook(t, &splitChunk, 1000)
		withHook(t, &splitChunkMin, 1000)
		withHook(t, &processVMWritev, refuseCMA)
		transporttest.Run(t, factory)
	})
	t.Run("split-writev-fails", func(t *testing.T) {
		// Every other write fails (EFAULT): the receiver reads those
		// chunks itself.
		withHook(t, &eagerLimit, 64)
		withHook(t, &splitMin, 65)
		withHook(t, &splitChunk, 1000)
		withHook(t, &splitChunkMin, 1000)
		var calls atomic.Int64
		withHook(t, &processVMWritev, func(pid int, l []unix.Iovec, r []unix.RemoteIovec, f uint) (int, error) {
			if calls.Add(1)%2 == 0 {
				return 0, unix.EFAULT
			}
			return unix.ProcessVMWritev(pid, l, r, f)
		})
		transporttest.Run(t, factory)
	})
	t.Run("split-readv-refused", func(t *testing.T) {
		// The receiver is refused after the sender started writing:
		// the payload follows through the ring.
		withHook(t, &eagerLimit, 64)
		withHook(t, &splitMin, 65)
		withHook(t, &splitChunk, 1000)
		withHook(t, &splitChunkMin, 1000)
		withHook(t, &processVMReadv, refuseCMA)
		transporttest.Run(t, factory)
	})
}

func TestSegmentSize(t *testing.T) {
	for _, tc := range []struct {
		n    int
		ring int64
	}{{1, 1 << 20}, {2, 1 << 20}, {8, 2 << 20 >> 1}, {16, 512 << 10}, {64, 32 << 10}, {200, 16 << 10}} {
		if got := ringSize(tc.n); got != tc.ring {
			t.Errorf("ringSize(%d) = %d, want %d", tc.n, got, tc.ring)
		}
	}
	for n := 1; n <= 64; n++ {
		total := int64(n) * SegmentSize(n)
		if total > 256<<20 {
			t.Errorf("%d ranks need %d bytes of /dev/shm, more than 256 MiB", n, total)
		}
		if SegmentSize(n)%pageSize != 0 {
			t.Errorf("SegmentSize(%d) = %d is not a whole number of pages", n, SegmentSize(n))
		}
	}
	if SegmentSize(0) != 0 {
		t.Errorf("SegmentSize(0) = %d", SegmentSize(0))
	}
	t.Logf("64 ranks: %d bytes per segment, %.1f MiB in all", SegmentSize(64), float64(64*SegmentSize(64))/(1<<20))
}

func TestNoSpace(t *testing.T) {
	dir := t.TempDir()
	withHook(t, &fallocate, func(int, uint32, int64, int64) error { return unix.ENOSPC })
	rec := transporttest.NewRecorder(0)
	_, err := Create(Config{Job: newJob(), Rank: 0, Local: []int{0, 1, 2, 3}, Sink: rec, Dir: dir})
	if err == nil {
		t.Fatal("Create succeeded without space")
	}
	msg := err.Error()
	for _, want := range []string{"shm: ", dir, "free", "needs", "--shm-size", "GORUN_TRANSPORT=tcp", "4 local ranks"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("error %v does not wrap ENOSPC", err)
	}
	t.Log(msg)
	assertEmpty(t, dir)
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	rec := transporttest.NewRecorder(0)
	for _, cfg := range []Config{
		{Job: "", Rank: 0, Local: []int{0}, Sink: rec},
		{Job: "a/b", Rank: 0, Local: []int{0}, Sink: rec},
		{Job: "j", Rank: 0, Local: []int{0}},
		{Job: "j", Rank: 1, Local: []int{0, 2}, Sink: rec},
		{Job: "j", Rank: 0, Local: []int{2, 0}, Sink: rec},
		{Job: "j", Rank: 0, Local: nil, Sink: rec},
	} {
		cfg.Dir = dir
		if ep, err := Create(cfg); err == nil {
			ep.Close()
			t.Errorf("Create(%+v) succeeded", cfg)
		} else if !strings.HasPrefix(err.Error(), "shm: ") {
			t.Errorf("Create(%+v): error %q lacks the shm: prefix", cfg, err)
		}
	}
	// A second rank with the same job and rank is refused.
	job := newJob()
	ep, err := Create(Config{Job: job, Rank: 0, Local: []int{0}, Sink: rec, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	if ep2, err := Create(Config{Job: job, Rank: 0, Local: []int{0}, Sink: rec, Dir: dir}); err == nil {
		ep2.Close()
		t.Error("second Create of the same segment succeeded")
	} else if !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Create: %v", err)
	}
}

func TestAttachMismatch(t *testing.T) {
	dir := t.TempDir()
	job := newJob()
	a, err := Create(Config{Job: job, Rank: 0, Local: []int{0, 1}, Sink: transporttest.NewRecorder(0), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Create(Config{Job: job, Rank: 1, Local: []int{0, 1, 2}, Sink: transporttest.NewRecorder(1), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Attach(context.Background()); err == nil || !strings.Contains(err.Error(), "do all local ranks agree") {
		t.Errorf("Attach to a segment of another size: %v", err)
	}
	// A missing peer: Attach waits until its context ends.
	c, err := Create(Config{Job: newJob(), Rank: 0, Local: []int{0, 1}, Sink: transporttest.NewRecorder(0), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Attach(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Attach with a missing peer: %v", err)
	}
}

func TestSendErrors(t *testing.T) {
	dir := t.TempDir()
	recs := []transport.Sink{transporttest.NewRecorder(0), transporttest.NewRecorder(1)}
	eps := makeEndpoints(t, dir, recs)
	for _, h := range []transport.Header{
		{Kind: transport.KindData, Src: 0, Dst: 5},
		{Kind: transport.KindData, Src: 1, Dst: 1},
		{Kind: transport.KindBye, Src: 0, Dst: 1},
	} {
		if err := eps[0].Send(h, nil); err == nil || !strings.HasPrefix(err.Error(), "shm: ") {
			t.Errorf("Send(%+v) = %v", h, err)
		}
	}
}

// countSink counts deliveries and reuses one buffer: the engine's steady
// state for posted receives.
type countSink struct {
	buf  []byte
	n    atomic.Uint64
	lost atomic.Int32
	_    [128]byte // two sinks never share a cache line (n is polled)
}

func (s *countSink) Buffer(h transport.Header) []byte {
	if cap(s.buf) < int(h.Len) {
		s.buf = make([]byte, h.Len)
	}
	return s.buf[:h.Len]
}
func (s *countSink) Deliver(transport.Header, []byte) { s.n.Add(1) }
func (s *countSink) PeerLost(int, error)              { s.lost.Add(1) }

func TestZeroAllocs(t *testing.T) {
	sinks := []*countSink{{}, {}}
	eps := makeEndpoints(t, t.TempDir(), []transport.Sink{sinks[0], sinks[1]})
	payload := make([]byte, 8)
	h := transport.Header{Kind: transport.KindData, Src: 0, Dst: 1, Len: 8}
	roundTrip := func() {
		want := sinks[1].n.Load() + 1
		if err := eps[0].Send(h, payload); err != nil {
			t.Fatal(err)
		}
		for sinks[1].n.Load() < want {
			eps[1].Poll()
		}
	}
	roundTrip()
	if a := testing.AllocsPerRun(1000, roundTrip); a != 0 {
		t.Errorf("Send + Poll of an 8-byte frame: %v allocations, want 0", a)
	}
	big := transport.Header{Kind: transport.KindData, Src: 0, Dst: 1, Len: 4096}
	payload = make([]byte, 4096)
	h = big
	if a := testing.AllocsPerRun(1000, roundTrip); a != 0 {
		t.Errorf("Send + Poll of a 4 KiB frame: %v allocations, want 0", a)
	}
}

// TestIdleSleeps checks that an idle endpoint's reader goes to sleep on its
// bell (it burns no CPU), and that a frame wakes it.
func TestIdleSleeps(t *testing.T) {
	sinks := []*countSink{{}, {}}
	eps := makeEndpoints(t, t.TempDir(), []transport.Sink{sinks[0], sinks[1]})
	// Polling makes the reader nap; once polling stops it must sleep.
	for range 1000 {
		eps[1].Poll()
	}
	deadline := time.Now().Add(10 * time.Second)
	for atomic.LoadUint32(eps[1].own.sleeping) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("reader of rank 1 never went to sleep")
		}
		time.Sleep(time.Millisecond) // polling a condition, bounded
	}
	var ru0, ru1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	time.Sleep(200 * time.Millisecond) // the measurement window
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	used := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	t.Logf("CPU time while idle for 200ms: %v", used)
	if used > 50*time.Millisecond {
		t.Errorf("idle endpoints used %v of CPU in 200ms", used)
	}
	// A frame wakes the sleeping reader (no Poll).
	if err := eps[0].Send(transport.Header{Kind: transport.KindData, Src: 0, Dst: 1, Len: 3}, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	for sinks[1].n.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("frame to a sleeping reader never delivered")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestPollStops checks that a frame sent just after the last Poll is still
// delivered (by the napping reader): no wake-up is lost.
func TestPollStops(t *testing.T) {
	sinks := []*countSink{{}, {}}
	eps := makeEndpoints(t, t.TempDir(), []transport.Sink{sinks[0], sinks[1]})
	h := transport.Header{Kind: transport.KindData, Src: 0, Dst: 1, Len: 1}
	for i := range 200 {
		for range i % 7 * 10 {
			eps[1].Poll()
		}
		if err := eps[0].Send(h, []byte{1}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for sinks[1].n.Load() != uint64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("frame %d not delivered", i)
			}
			runtime.Gosched()
		}
	}
}

// BenchmarkPingPong bounces a message between two endpoints of this
// process, each side spinning on Poll. ns/op is one round trip.
func BenchmarkPingPong(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"8B", 8}, {"4KiB", 4 << 10}, {"8KiB", 8 << 10}, {"16KiB", 16 << 10}, {"32KiB", 32 << 10},
		{"64KiB", 64 << 10}, {"256KiB", 256 << 10}, {"1MiB", 1 << 20}, {"4MiB", 4 << 20}} {
		b.Run(size.name, func(b *testing.B) { benchPingPong(b, size.n) })
	}
}

func benchPingPong(b *testing.B, size int) {
	sinks := []*countSink{{}, {}}
	eps := makeEndpoints(b, b.TempDir(), []transport.Sink{sinks[0], sinks[1]})
	ping := make([]byte, size)
	pong := make([]byte, size)
	for i := range ping {
		ping[i] = byte(i)
	}
	h01 := transport.Header{Kind: transport.KindData, Src: 0, Dst: 1, Len: uint32(size)}
	h10 := transport.Header{Kind: transport.KindData, Src: 1, Dst: 0, Len: uint32(size)}
	var stop atomic.Bool
	done := make(chan error, 1)
	go func() { // the echo side; exits once stop is set and its last pong is sent
		var seen uint64
		for {
			for sinks[1].n.Load() == seen {
				if stop.Load() {
					done <- nil
					return
				}
				eps[1].Poll()
			}
			seen++
			if err := eps[1].Send(h10, pong); err != nil {
				done <- err
				return
			}
		}
	}()
	b.SetBytes(int64(2 * size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := eps[0].Send(h01, ping); err != nil {
			b.Fatal(err)
		}
		for sinks[0].n.Load() == uint64(i) {
			eps[0].Poll()
		}
	}
	b.StopTimer()
	stop.Store(true)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N)/1000, "µs/halfRTT")
}

// BenchmarkPollEmpty is the cost of a Poll that finds nothing: the
// granularity of a spinning waiter.
func BenchmarkPollEmpty(b *testing.B) {
	for _, n := range []int{2, 8} {
		b.Run(fmt.Sprintf("ranks=%d", n), func(b *testing.B) {
			sinks := make([]transport.Sink, n)
			for i := range sinks {
				sinks[i] = &countSink{}
			}
			eps := makeEndpoints(b, b.TempDir(), sinks)
			b.ReportAllocs()
			for b.Loop() {
				eps[0].Poll()
			}
		})
	}
}

// BenchmarkSendPoll sends a frame and delivers it with Poll in one
// goroutine: the software cost of a small message, without cache misses.
func BenchmarkSendPoll(b *testing.B) {
	sinks := []*countSink{{}, {}}
	eps := makeEndpoints(b, b.TempDir(), []transport.Sink{sinks[0], sinks[1]})
	payload := make([]byte, 8)
	h := transport.Header{Kind: transport.KindData, Src: 0, Dst: 1, Len: 8}
	b.ReportAllocs()
	for b.Loop() {
		want := sinks[1].n.Load() + 1
		if err := eps[0].Send(h, payload); err != nil {
			b.Fatal(err)
		}
		for sinks[1].n.Load() < want {
			eps[1].Poll()
		}
	}
}

// srcSink records the source rank of every frame it is given.
type srcSink struct {
	countSink
	srcs []int32 // written under the drainer's pollMu
}

func (s *srcSink) Deliver(h transport.Header, b []byte) {
	s.srcs = append(s.srcs, h.Src)
	s.countSink.Deliver(h, b)
}

// TestPollDeliversOneFrame pins the limited drain that Poll uses: one
// frame a call, so a waiter whose message it was returns without touching
// the next record, and rings taken in turn, so a busy sender cannot starve
// another. The test holds pollMu itself, which keeps the endpoint's reader
// (it only ever TryLocks) from draining behind its back.
func TestPollDeliversOneFrame(t *testing.T) {
	sink := &srcSink{}
	eps := makeEndpoints(t, t.TempDir(), []transport.Sink{sink, &countSink{}, &countSink{}})
	e := eps[0]
	e.pollMu.Lock()
	defer e.pollMu.Unlock()
	for src := 1; src <= 2; src++ {
		h := transport.Header{Kind: transport.KindData, Src: int32(src), Dst: 0, Len: 8}
		for range 3 {
			if err := eps[src].Send(h, make([]byte, 8)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 4 {
		if n := e.drainLocked(1); n != 1 {
			t.Fatalf("limited drain %d delivered %d frames; want 1", i, n)
		}
	}
	if want := []int32{1, 2, 1, 2}; !slices.Equal(sink.srcs, want) {
		t.Fatalf("limited drains took frames from %v; want alternating rings %v", sink.srcs, want)
	}
	if n := e.drainLocked(0); n != 2 {
		t.Fatalf("a full drain delivered %d frames; want the 2 left", n)
	}
}
