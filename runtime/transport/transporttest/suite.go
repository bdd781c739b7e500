// Package transporttest is the conformance suite every gorun transport runs
// from its own tests: it checks the ordering, delivery, concurrency and
// shutdown promises of the contract in package transport.
package transporttest

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// Run runs the conformance suite against a transport. newEndpoints returns
// len(sinks) connected endpoints: endpoint i is rank i and hands its inbound
// frames to sinks[i]. Every check runs once with a single rank (frames to
// oneself) and once with three ranks (frames between distinct ranks); a
// transport that cannot serve that many ranks (loopback serves exactly one)
// calls t.Skip from newEndpoints.
//
// The sinks are Recorders, which also check that the transport keeps the
// Sink contract; endpoints are closed at the end of each check.
func Run(t *testing.T, newEndpoints func(t *testing.T, sinks []transport.Sink) []transport.Endpoint) {
	s := suite{newEndpoints: newEndpoints}
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("ranks=%d", n), func(t *testing.T) {
			t.Run("FIFO", func(t *testing.T) { s.fifo(t, n) })
			t.Run("ZeroLength", func(t *testing.T) { s.zeroLength(t, n) })
			t.Run("Large", func(t *testing.T) { s.large(t, n) })
			t.Run("ConcurrentSenders", func(t *testing.T) { s.concurrent(t, n) })
			t.Run("BadLength", func(t *testing.T) { s.badLength(t, n) })
			t.Run("CloseWhileSending", func(t *testing.T) { s.closeWhileSending(t, n) })
			t.Run("SendAfterClose", func(t *testing.T) { s.sendAfterClose(t, n) })
			t.Run("CloseIdempotent", func(t *testing.T) { s.closeIdempotent(t, n) })
			if n > 1 {
				t.Run("OrderlyClose", func(t *testing.T) { s.orderlyClose(t, n) })
			}
			t.Run("NoGoroutineLeak", func(t *testing.T) { s.noLeak(t, n) })
			// The same traffic into sinks that take whole frames
			// (transport.FrameSink), which transports may use for
			// frames they hold in memory.
			fs := suite{newEndpoints: newEndpoints, frameSinks: true}
			t.Run("FrameSink/FIFO", func(t *testing.T) { fs.fifo(t, n) })
			t.Run("FrameSink/ZeroLength", func(t *testing.T) { fs.zeroLength(t, n) })
			t.Run("FrameSink/Large", func(t *testing.T) { fs.large(t, n) })
			t.Run("FrameSink/ConcurrentSenders", func(t *testing.T) { fs.concurrent(t, n) })
			// And into sinks that take runs of frames at once
			// (transport.FrameBatchSink).
			bs := suite{newEndpoints: newEndpoints, batchSinks: true}
			t.Run("BatchSink/FIFO", func(t *testing.T) { bs.fifo(t, n) })
			t.Run("BatchSink/ZeroLength", func(t *testing.T) { bs.zeroLength(t, n) })
			t.Run("BatchSink/Large", func(t *testing.T) { bs.large(t, n) })
			t.Run("BatchSink/ConcurrentSenders", func(t *testing.T) { bs.concurrent(t, n) })
		})
	}
}

type suite struct {
	newEndpoints func(t *testing.T, sinks []transport.Sink) []transport.Endpoint
	frameSinks   bool // the sinks are FrameRecorders
	batchSinks   bool // the sinks are BatchRecorders
}

// setup builds n endpoints with recording sinks. At cleanup it closes them
// and reports every Sink contract breach the recorders saw.
func (s suite) setup(t *testing.T, n int) ([]transport.Endpoint, []*Recorder) {
	t.Helper()
	recs := make([]*Recorder, n)
	sinks := make([]transport.Sink, n)
	for i := range recs {
		recs[i] = NewRecorder(i)
		sinks[i] = recs[i]
		switch {
		case s.batchSinks:
			sinks[i] = BatchRecorder{FrameRecorder{recs[i]}}
		case s.frameSinks:
			sinks[i] = FrameRecorder{recs[i]}
		}
	}
	eps := s.newEndpoints(t, sinks)
	if len(eps) != n {
		t.Fatalf("factory returned %d endpoints for %d sinks", len(eps), n)
	}
	t.Cleanup(func() {
		closeAll(t, eps, recs)
		for _, r := range recs {
			for _, p := range r.Violations() {
				t.Errorf("sink of rank %d: %s", r.Rank, p)
			}
		}
	})
	return eps, recs
}

// closeAll closes every endpoint in rank order, marking each recorder closed
// once its endpoint's Close has returned.
func closeAll(t *testing.T, eps []transport.Endpoint, recs []*Recorder) {
	t.Helper()
	for i, ep := range eps {
		if err := ep.Close(); err != nil {
			t.Errorf("rank %d: Close: %v", i, err)
		}
		recs[i].MarkClosed()
	}
}

// pairs returns the (src, dst) pairs a test exercises: every ordered pair of
// distinct ranks, or (0, 0) when there is a single rank.
func pairs(n int) [][2]int {
	if n == 1 {
		return [][2]int{{0, 0}}
	}
	var ps [][2]int
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if i != j {
				ps = append(ps, [2]int{i, j})
			}
		}
	}
	return ps
}

// peers returns the ranks src sends to.
func peers(n, src int) []int {
	var ds []int
	for _, p := range pairs(n) {
		if p[0] == src {
			ds = append(ds, p[1])
		}
	}
	return ds
}

// senders returns the ranks that send to dst.
func senders(n, dst int) []int {
	var ss []int
	for _, p := range pairs(n) {
		if p[1] == dst {
			ss = append(ss, p[0])
		}
	}
	return ss
}

// patternPeriod is the period of fill's pattern: prime, so that bytes moved
// by any power-of-two offset no longer match.
const patternPeriod = 4093

// pattern returns the first patternPeriod bytes of frame (src, tag, seq).
func pattern(src, tag int32, seq uint64) []byte {
	x := uint32(src)*0x9E3779B1 ^ uint32(tag)*0x85EBCA6B ^ uint32(seq)*0xC2B2AE35 ^ uint32(seq>>32)
	b := make([]byte, patternPeriod)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// fill writes the deterministic payload of frame (src, tag, seq) into b.
func fill(b []byte, src, tag int32, seq uint64) {
	p := pattern(src, tag, seq)
	for len(b) > 0 {
		b = b[copy(b, p):]
	}
}

// check returns the index of the first byte of b that differs from fill's
// output for (src, tag, seq), or -1.
func check(b []byte, src, tag int32, seq uint64) int {
	p := pattern(src, tag, seq)
	for off := 0; off < len(b); off += patternPeriod {
		blk := b[off:min(off+patternPeriod, len(b))]
		if !bytes.Equal(blk, p[:len(blk)]) {
			for i := range blk {
				if blk[i] != p[i] {
					return off + i
				}
			}
		}
	}
	return -1
}

// frame builds a frame from src to dst with a filled payload of size bytes;
// size < 0 makes a KindAck frame.
func frame(src, dst int, tag int32, seq uint64, size int) (transport.Header, []byte) {
	h := transport.Header{Kind: transport.KindData, Type: 3, Context: 7, Src: int32(src), Dst: int32(dst), Tag: tag, Seq: seq}
	if size < 0 {
		h.Kind = transport.KindAck
		return h, nil
	}
	p := make([]byte, size)
	fill(p, h.Src, tag, seq)
	h.Len = uint32(size)
	return h, p
}

// verify checks one recorded frame's payload against fill.
func verify(t *testing.T, rank int, f Frame) {
	t.Helper()
	h := f.Header
	if h.Kind != transport.KindData {
		return
	}
	if len(f.Payload) != int(h.Len) {
		t.Errorf("rank %d: frame %+v has %d payload bytes", rank, h, len(f.Payload))
		return
	}
	if i := check(f.Payload, h.Src, h.Tag, h.Seq); i >= 0 {
		t.Errorf("rank %d: frame %+v: payload differs at byte %d", rank, h, i)
	}
}

// waitCount waits until rec holds want non-Bye frames from every sender.
func waitCount(t *testing.T, rec *Recorder, from []int, want int) {
	t.Helper()
	rec.Wait(t, fmt.Sprintf("%d frames from each of ranks %v", want, from), func(fs []Frame, _ []Lost) bool {
		for _, src := range from {
			if CountData(fs, src) < want {
				return false
			}
		}
		return true
	})
}

// fifo: every rank sends a long sequence of data and ack frames of varying
// size to each peer from one goroutine; each receiver must see each sender's
// sequence complete and in order.
func (s suite) fifo(t *testing.T, n int) {
	eps, recs := s.setup(t, n)
	const count = 600
	size := func(seq int) int {
		switch {
		case seq%10 == 9:
			return -1 // ack frame
		case seq%50 == 7:
			return 70_000 + seq
		}
		return (seq * 37) % 700
	}
	errs := make(chan error, n)
	for src := 0; src < n; src++ {
		go func() { // exits after its count frames per peer; joined through errs
			for seq := 0; seq < count; seq++ {
				for _, dst := range peers(n, src) {
					h, p := frame(src, dst, 1, uint64(seq), size(seq))
					if err := eps[src].Send(h, p); err != nil {
						errs <- fmt.Errorf("rank %d: Send %+v: %w", src, h, err)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for dst := 0; dst < n; dst++ {
		from := senders(n, dst)
		waitCount(t, recs[dst], from, count)
		next := make(map[int32]uint64)
		for _, f := range recs[dst].Frames() {
			h := f.Header
			if h.Seq != next[h.Src] {
				t.Fatalf("rank %d: from rank %d got seq %d, want %d (frames out of order or lost)", dst, h.Src, h.Seq, next[h.Src])
			}
			next[h.Src]++
			if want := size(int(h.Seq)); (want < 0) != (h.Kind == transport.KindAck) || (want >= 0 && int(h.Len) != want) {
				t.Fatalf("rank %d: frame %+v: want size %d", dst, h, want)
			}
			verify(t, dst, f)
		}
	}
}

// zeroLength: a data frame with no payload and a control frame both arrive.
func (s suite) zeroLength(t *testing.T, n int) {
	eps, recs := s.setup(t, n)
	for _, p := range pairs(n) {
		h, payload := frame(p[0], p[1], 5, 0, 0)
		if err := eps[p[0]].Send(h, payload); err != nil {
			t.Fatalf("Send zero-length data %+v: %v", h, err)
		}
		if err := eps[p[0]].Send(h, nil); err != nil {
			t.Fatalf("Send zero-length data %+v with nil payload: %v", h, err)
		}
		a, _ := frame(p[0], p[1], 5, 1, -1)
		if err := eps[p[0]].Send(a, nil); err != nil {
			t.Fatalf("Send ack %+v: %v", a, err)
		}
	}
	for dst := 0; dst < n; dst++ {
		waitCount(t, recs[dst], senders(n, dst), 3)
		for _, f := range recs[dst].Frames() {
			if len(f.Payload) != 0 {
				t.Errorf("rank %d: %+v delivered with %d bytes", dst, f.Header, len(f.Payload))
			}
		}
	}
}

// large: one 64 MiB payload (4 MiB with -short) arrives byte-exact.
func (s suite) large(t *testing.T, n int) {
	eps, recs := s.setup(t, n)
	size := 64 << 20
	if testing.Short() {
		size = 4 << 20
	}
	p := pairs(n)[0]
	h, payload := frame(p[0], p[1], 9, 1<<40+3, size)
	if err := eps[p[0]].Send(h, payload); err != nil {
		t.Fatalf("Send %d bytes: %v", size, err)
	}
	clear(payload) // the transport must not keep the caller's buffer
	waitCount(t, recs[p[1]], []int{p[0]}, 1)
	fs := recs[p[1]].Frames()
	if len(fs) != 1 || fs[0].Header != h {
		t.Fatalf("rank %d: got %d frames, want exactly one %+v", p[1], len(fs), h)
	}
	verify(t, p[1], fs[0])
}

// concurrent: many goroutines per rank send at once; every frame arrives
// exactly once, and in order per sending goroutine.
func (s suite) concurrent(t *testing.T, n int) {
	eps, recs := s.setup(t, n)
	const goroutines, count = 8, 250
	var wg sync.WaitGroup
	errs := make(chan error, n*goroutines)
	for src := 0; src < n; src++ {
		for g := range goroutines {
			wg.Add(1)
			go func() { // exits after count frames; joined by wg
				defer wg.Done()
				ds := peers(n, src)
				for seq := 0; seq < count; seq++ {
					dst := ds[(seq+g)%len(ds)]
					h, p := frame(src, dst, int32(g), uint64(seq), (seq*g)%300)
					if err := eps[src].Send(h, p); err != nil {
						errs <- fmt.Errorf("rank %d goroutine %d: Send: %w", src, g, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Work out how many frames each rank must receive.
	want := make([]int, n)
	for src := 0; src < n; src++ {
		ds := peers(n, src)
		for g := range goroutines {
			for seq := 0; seq < count; seq++ {
				want[ds[(seq+g)%len(ds)]]++
			}
		}
	}
	for dst := 0; dst < n; dst++ {
		recs[dst].Wait(t, fmt.Sprintf("%d frames", want[dst]), func(fs []Frame, _ []Lost) bool { return len(fs) >= want[dst] })
		type key struct{ src, tag int32 }
		last := make(map[key]int64)
		fs := recs[dst].Frames()
		if len(fs) != want[dst] {
			t.Errorf("rank %d: %d frames, want %d", dst, len(fs), want[dst])
		}
		for _, f := range fs {
			k := key{f.Header.Src, f.Header.Tag}
			prev, ok := last[k]
			if !ok {
				prev = -1
			}
			if int64(f.Header.Seq) <= prev {
				t.Fatalf("rank %d: from rank %d goroutine %d: seq %d after %d (duplicate or reordered)", dst, k.src, k.tag, f.Header.Seq, prev)
			}
			last[k] = int64(f.Header.Seq)
			verify(t, dst, f)
		}
	}
}

// badLength: a payload whose length disagrees with Header.Len is refused.
func (s suite) badLength(t *testing.T, n int) {
	eps, recs := s.setup(t, n)
	p := pairs(n)[0]
	h, payload := frame(p[0], p[1], 1, 0, 10)
	h.Len = 11
	if err := eps[p[0]].Send(h, payload); err == nil {
		t.Errorf("Send with Len %d and %d payload bytes succeeded", h.Len, len(payload))
	}
	// The endpoint keeps working.
	h.Len = 10
	if err := eps[p[0]].Send(h, payload); err != nil {
		t.Fatalf("Send after a refused frame: %v", err)
	}
	waitCount(t, recs[p[1]], []int{p[0]}, 1)
	if got := len(recs[p[1]].Frames()); got != 1 {
		t.Errorf("rank %d received %d frames, want 1", p[1], got)
	}
}

// allowedSendErr reports whether err is a legitimate result of a Send racing
// with Close.
func allowedSendErr(err error) bool {
	return err == nil || errors.Is(err, transport.ErrClosed) || errors.Is(err, transport.ErrPeerLost)
}

// within runs f and fails the test if it does not return within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { // exits when f returns; joined below unless f hangs (then the test fails)
		defer close(done)
		f()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s did not return within %v; goroutines:\n%s", what, d, buf)
	}
}

// closeWhileSending: goroutines on every rank send in a loop while rank 0
// (a sender and, with several ranks, a receiver) and then the rest close.
// Nothing may panic or hang, and every Send returns nil, ErrClosed or
// ErrPeerLost.
func (s suite) closeWhileSending(t *testing.T, n int) {
	eps, recs := s.setup(t, n)
	const goroutines = 4
	var wg sync.WaitGroup
	bad := make(chan error, n*goroutines)
	for src := 0; src < n; src++ {
		for g := range goroutines {
			wg.Add(1)
			go func() { // exits once its endpoint's Send fails (every endpoint is closed below); joined by wg
				defer wg.Done()
				ds := peers(n, src)
				for seq := 0; ; seq++ {
					h, p := frame(src, ds[(seq+g)%len(ds)], int32(g), uint64(seq), (seq%5)*1000)
					err := eps[src].Send(h, p)
					if !allowedSendErr(err) {
						bad <- fmt.Errorf("rank %d: Send during Close: %w", src, err)
						return
					}
					if errors.Is(err, transport.ErrClosed) {
						return
					}
				}
			}()
		}
	}
	// Let traffic flow before closing.
	for dst := 0; dst < n; dst++ {
		waitCount(t, recs[dst], senders(n, dst)[:1], 20)
	}
	within(t, time.Minute, "Close of every endpoint during sends", func() {
		var cw sync.WaitGroup
		for i := range eps {
			cw.Add(1)
			go func() { // exits when Close returns; joined by cw
				defer cw.Done()
				if err := eps[i].Close(); err != nil {
					bad <- fmt.Errorf("rank %d: Close: %w", i, err)
				}
			}()
		}
		cw.Wait()
		wg.Wait()
	})
	close(bad)
	for err := range bad {
		t.Error(err)
	}
}

// sendAfterClose: Send on a closed endpoint fails with ErrClosed.
func (s suite) sendAfterClose(t *testing.T, n int) {
	eps, recs := s.setup(t, n)
	for _, p := range pairs(n) {
		h, payload := frame(p[0], p[1], 0, 0, 16)
		if err := eps[p[0]].Send(h, payload); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	closeAll(t, eps, recs)
	for _, p := range pairs(n) {
		h, payload := frame(p[0], p[1], 0, 1, 16)
		if err := eps[p[0]].Send(h, payload); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("rank %d: Send after Close = %v, want ErrClosed", p[0], err)
		}
		a, _ := frame(p[0], p[1], 0, 2, -1)
		if err := eps[p[0]].Send(a, nil); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("rank %d: Send of ack after Close = %v, want ErrClosed", p[0], err)
		}
	}
}

// closeIdempotent: Close may be called repeatedly and concurrently.
func (s suite) closeIdempotent(t *testing.T, n int) {
	eps, recs := s.setup(t, n)
	for _, p := range pairs(n) {
		h, payload := frame(p[0], p[1], 0, 0, 16)
		if err := eps[p[0]].Send(h, payload); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	within(t, time.Minute, "concurrent Close calls", func() {
		var wg sync.WaitGroup
		for i := range eps {
			for range 3 {
				wg.Add(1)
				go func() { // exits when Close returns; joined by wg
					defer wg.Done()
					if err := eps[i].Close(); err != nil {
						t.Errorf("rank %d: concurrent Close: %v", i, err)
					}
				}()
			}
		}
		wg.Wait()
	})
	closeAll(t, eps, recs)
}

// orderlyClose: a closing rank's Bye reaches every peer it sent to, after
// its data, and nobody is told the rank was lost.
func (s suite) orderlyClose(t *testing.T, n int) {
	eps, recs := s.setup(t, n)
	for _, p := range pairs(n) {
		h, payload := frame(p[0], p[1], 0, 0, 100)
		if err := eps[p[0]].Send(h, payload); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if err := eps[0].Close(); err != nil {
		t.Fatalf("rank 0: Close: %v", err)
	}
	recs[0].MarkClosed()
	for dst := 1; dst < n; dst++ {
		recs[dst].Wait(t, "bye from rank 0", func(fs []Frame, _ []Lost) bool {
			for _, f := range fs {
				if f.Header.Src == 0 && f.Header.Kind == transport.KindBye {
					return true
				}
			}
			return false
		})
		var kinds []transport.Kind
		for _, f := range recs[dst].Frames() {
			if f.Header.Src == 0 {
				kinds = append(kinds, f.Header.Kind)
			}
		}
		if len(kinds) != 2 || kinds[0] != transport.KindData || kinds[1] != transport.KindBye {
			t.Errorf("rank %d: frames from closed rank 0: %v, want [data bye]", dst, kinds)
		}
		// Sending to the closed rank fails (possibly only once the
		// transport has noticed) and never hangs.
		h, payload := frame(dst, 0, 0, 1, 10)
		within(t, time.Minute, "Send to a closed rank", func() {
			if err := eps[dst].Send(h, payload); err != nil && !errors.Is(err, transport.ErrPeerLost) {
				t.Errorf("rank %d: Send to closed rank 0 = %v, want nil or ErrPeerLost", dst, err)
			}
		})
	}
	closeAll(t, eps, recs)
	for _, r := range recs {
		for _, l := range r.LostPeers() {
			t.Errorf("rank %d: PeerLost(%d, %v) after an orderly close", r.Rank, l.Rank, l.Err)
		}
	}
}

// noLeak: after Close every goroutine the transport started is gone.
func (s suite) noLeak(t *testing.T, n int) {
	base := runtime.NumGoroutine()
	eps, recs := s.setup(t, n)
	for _, p := range pairs(n) {
		h, payload := frame(p[0], p[1], 0, 0, 1000)
		if err := eps[p[0]].Send(h, payload); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for dst := 0; dst < n; dst++ {
		waitCount(t, recs[dst], senders(n, dst), 1)
	}
	closeAll(t, eps, recs)
	// Close has joined its goroutines, but goroutines of the runtime's
	// network poller or of the test framework may take a moment to settle:
	// poll, bounded, rather than demand an exact count at once.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Close, %d before; goroutines:\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
