//go:build linux

package mpi

import (
	"fmt"
	"os"
	"testing"
	"unsafe"

	"github.com/gorun-hpc/gorun/runtime/transport/shm"
)

// shmPair builds two worlds of one 2-rank job in this process, connected
// by a real shared-memory transport (segments in a temporary directory), as
// two processes on one host would be, without a launcher. Cleanup closes
// them.
func shmPair(tb testing.TB) [2]*world {
	tb.Helper()
	var ws [2]*world
	var eps [2]*shm.Endpoint
	job := fmt.Sprintf("bench%d", os.Getpid())
	dir := tb.TempDir()
	for r := range ws {
		w := newWorld(r, 2)
		w.host, w.job = "pair", job
		ep, err := shm.Create(shm.Config{Job: job, Rank: r, Local: []int{0, 1}, Sink: w.eng, Dir: dir})
		if err != nil {
			tb.Fatal(err)
		}
		w.addEndpoint(ep)
		w.setRoutes(ep, "shm", nil)
		w.shmRoutes = []*shm.Endpoint{0: ep, 1: ep}
		w.shmRoutes[r] = nil
		ws[r], eps[r] = w, ep
		tb.Cleanup(w.close)
	}
	for _, ep := range eps {
		if err := ep.Attach(tb.Context()); err != nil {
			tb.Fatal(err)
		}
	}
	for _, ep := range eps {
		if err := ep.Unlink(); err != nil {
			tb.Fatal(err)
		}
	}
	return ws
}

// BenchmarkShmPingPong is the blocking Send/Recv ping-pong of examples/bench
// latency between two goroutines over shared memory: the whole runtime
// path, without the noise of two launched processes. ns/op is one round
// trip.
func BenchmarkShmPingPong(b *testing.B) {
	for _, size := range []int{8, 4 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ws := shmPair(b)
			c0, c1 := ws[0].comm, ws[1].comm
			out, in := lineBuf[byte](size), lineBuf[byte](size)
			echo, ein := lineBuf[byte](size), lineBuf[byte](size)
			done := make(chan error, 1)
			n := b.N
			go func() { // the echo side: answers n pings, then exits
				for range n {
					if _, err := Recv(c1, ein, 0, 1); err != nil {
						done <- err
						return
					}
					if err := Send(c1, echo, 0, 1); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			b.ReportAllocs()
			b.ResetTimer()
			for range n {
				if err := Send(c0, out, 1, 1); err != nil {
					b.Fatal(err)
				}
				if _, err := Recv(c0, in, 1, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*n)/1000, "µs/halfRTT")
		})
	}
}

// BenchmarkShmSendrecv is the exchange a 2-rank barrier or recursive
// doubling step makes: both ranks Sendrecv a small message at once.
func BenchmarkShmSendrecv(b *testing.B) {
	ws := shmPair(b)
	n := b.N
	done := make(chan error, 1)
	go func() { // the partner: n exchanges, then exits
		out, in := lineBuf[float64](1), lineBuf[float64](1)
		for range n {
			if _, err := Sendrecv(ws[1].comm, out, 0, 2, in, 0, 2); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	out, in := lineBuf[float64](1), lineBuf[float64](1)
	b.ReportAllocs()
	b.ResetTimer()
	for range n {
		if _, err := Sendrecv(ws[0].comm, out, 1, 2, in, 1, 2); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// lineBuf returns n elements in cache lines of their own. Small slices made
// one after the other share a line, and the two goroutines of a benchmark
// writing one line would bounce it between cores, which two processes
// never do.
func lineBuf[T Numeric](n int) []T {
	const line = 128 // a size class whose objects are 128-byte aligned
	var z T
	sz := int(unsafe.Sizeof(z))
	return make([]T, n, max(n, line/sz))[:n]
}

// BenchmarkShmSendRecvOneGoroutine sends a message over shared memory and
// receives it in the same goroutine: the software cost of one message on
// each side, without a cache line crossing cores.
func BenchmarkShmSendRecvOneGoroutine(b *testing.B) {
	ws := shmPair(b)
	c0, c1 := ws[0].comm, ws[1].comm
	out, in := lineBuf[byte](8), lineBuf[byte](8)
	b.ReportAllocs()
	for b.Loop() {
		if err := Send(c0, out, 1, 1); err != nil {
			b.Fatal(err)
		}
		if _, err := Recv(c1, in, 0, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShmWindow is examples/bench bw's pattern for 8-byte messages:
// rank 0 posts a window of Isends, rank 1 a window of Irecvs, and both wait
// for all of them. In one goroutine (the software cost of a message on
// both sides) and in two (as two ranks run it, with an ack per window).
// ns/op is one message.
func BenchmarkShmWindow(b *testing.B) {
	const window = 64
	b.Run("oneGoroutine", func(b *testing.B) {
		ws := shmPair(b)
		c0, c1 := ws[0].comm, ws[1].comm
		out, in := lineBuf[byte](8), lineBuf[byte](8)
		sreq, rreq := make([]*Request, window), make([]*Request, window)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			w := i % window
			var err error
			if sreq[w], err = Isend(c0, out, 1, 1); err != nil {
				b.Fatal(err)
			}
			if rreq[w], err = Irecv(c1, in, 0, 1); err != nil {
				b.Fatal(err)
			}
			if w == window-1 {
				if err := WaitAll(sreq...); err != nil {
					b.Fatal(err)
				}
				if err := WaitAll(rreq...); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("pair", func(b *testing.B) {
		ws := shmPair(b)
		c0, c1 := ws[0].comm, ws[1].comm
		windows := b.N/window + 1
		done := make(chan error, 1)
		go func() { // rank 1: windows of Irecvs, an ack after each
			in, ack := lineBuf[byte](8), lineBuf[int32](1)
			reqs := make([]*Request, window)
			for range windows {
				for w := range reqs {
					r, err := Irecv(c1, in, 0, 1)
					if err != nil {
						done <- err
						return
					}
					reqs[w] = r
				}
				if err := WaitAll(reqs...); err != nil {
					done <- err
					return
				}
				if err := Send(c1, ack, 0, 2); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		out, ack := lineBuf[byte](8), lineBuf[int32](1)
		reqs := make([]*Request, window)
		b.ReportAllocs()
		b.ResetTimer()
		for range windows {
			for w := range reqs {
				r, err := Isend(c0, out, 1, 1)
				if err != nil {
					b.Fatal(err)
				}
				reqs[w] = r
			}
			if err := WaitAll(reqs...); err != nil {
				b.Fatal(err)
			}
			if _, err := Recv(c0, ack, 1, 2); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(windows*window), "ns/msg")
	})
}

// BenchmarkShmIprobeLoop is a ping-pong whose echo side waits with a loop of
// Iprobe, as programs that overlap work with waiting do. ns/op is one round
// trip. Before Iprobe polled, the message reached the engine only through
// the shared-memory reader goroutine: 2 ms a round trip.
func BenchmarkShmIprobeLoop(b *testing.B) {
	echoPingPong(b, func(c *Comm, buf []byte) error {
		for {
			_, ok, err := Iprobe(c, 0, 1)
			if err != nil {
				return err
			}
			if ok {
				break
			}
		}
		_, err := Recv(c, buf, 0, 1)
		return err
	})
}

// BenchmarkShmWaitAnyLoop is a ping-pong whose echo side waits with Irecv
// and WaitAny. ns/op is one round trip. Before WaitAny polled, it parked at
// once and the shared-memory reader goroutine woke it: 3.2 µs a round trip
// in process against 0.22 for Recv.
func BenchmarkShmWaitAnyLoop(b *testing.B) {
	echoPingPong(b, func(c *Comm, buf []byte) error {
		r, err := Irecv(c, buf, 0, 1)
		if err != nil {
			return err
		}
		_, _, err = WaitAny(r)
		return err
	})
}

// echoPingPong times b.N blocking 8-byte round trips from rank 0 of a
// shmPair to rank 1, which receives each ping with recv and echoes it.
func echoPingPong(b *testing.B, recv func(c *Comm, buf []byte) error) {
	ws := shmPair(b)
	c0, c1 := ws[0].comm, ws[1].comm
	buf0, buf1 := lineBuf[byte](8), lineBuf[byte](8)
	n := b.N
	done := make(chan error, 1)
	go func() { // the echo side: answers n pings, then exits; joined below
		for range n {
			if err := recv(c1, buf1); err != nil {
				done <- err
				return
			}
			if err := Send(c1, buf1, 0, 1); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.ResetTimer()
	for range n {
		if err := Send(c0, buf0, 1, 1); err != nil {
			b.Fatal(err)
		}
		if _, err := Recv(c0, buf0, 1, 1); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
