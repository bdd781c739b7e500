package main

import (
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// The method, sizes, iteration counts and output of pingpong.c.
const (
	window = 64 // messages in flight per bandwidth iteration
	tagPP  = 1
	tagBW  = 2
	tagAck = 3
)

var sizes = []int{0, 8, 64, 512, 4 << 10, 32 << 10, 256 << 10, 1 << 20, 4 << 20}

// benchSizes returns the message sizes to measure: sizes, or the subset of
// them that BENCH_SIZES lists (see only).
func benchSizes() []int { return only(sizes) }

// only returns the values of all that BENCH_SIZES lists (comma-separated,
// e.g. "8,4096": bytes for latency and bw, the test's counts for the
// collectives), or all when it is unset, for profiling one size.
func only(all []int) []int {
	v := os.Getenv("BENCH_SIZES")
	if v == "" {
		return all
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && slices.Contains(all, n) {
			out = append(out, n)
		}
	}
	return out
}

// latIters is the number of timed ping-pongs for a message of size bytes.
func latIters(size int, scale float64) int {
	var it int
	switch {
	case size <= 4<<10:
		it = 20000
	case size <= 32<<10:
		it = 5000
	case size <= 256<<10:
		it = 1000
	case size <= 1<<20:
		it = 300
	default:
		it = 100
	}
	return max(int(float64(it)*scale), 10)
}

// bwIters is the number of timed windows for a message of size bytes.
func bwIters(size int, scale float64) int {
	var it int
	switch {
	case size <= 4<<10:
		it = 2000
	case size <= 32<<10:
		it = 500
	case size <= 256<<10:
		it = 100
	case size <= 1<<20:
		it = 30
	default:
		it = 10
	}
	return max(int(float64(it)*scale), 3)
}

// pingpong measures latency (lat) and/or bandwidth (bw) between ranks 0 and 1
// for every size; other ranks only join the barriers. Rank 0 prints one row
// per size: size_B lat_us bw_MBps lat_it bw_it. A measure that was not taken
// prints as 0 with 0 iterations, as pingpong.c does for bandwidth at size 0.
func pingpong(c *mpi.Comm, scale float64, lat, bw bool, out io.Writer) error {
	rank := c.Rank()
	maxSize := sizes[len(sizes)-1]
	sbuf := make([]byte, maxSize)
	rbuf := make([]byte, maxSize)
	for i := range sbuf {
		sbuf[i], rbuf[i] = 'a', 'b'
	}
	// The buffers start a garbage collection; finish it (sweeping too)
	// now, or its background work takes CPU from the first size measured.
	goruntime.GC()
	if rank == 0 {
		fmt.Fprintf(out, "# library: %s\n", library())
		fmt.Fprintf(out, "# ranks: %d  window: %d  iter_scale: %.2f\n", c.Size(), window, scale)
		fmt.Fprintf(out, "# %10s %12s %12s %8s %8s\n", "size_B", "lat_us", "bw_MBps", "lat_it", "bw_it")
	}
	for _, sz := range benchSizes() {
		var latUS, mbps float64
		var li, bi int
		if lat {
			li = latIters(sz, scale)
			if err := barrier(c); err != nil {
				return err
			}
			us, err := latency(c, sbuf[:sz], rbuf[:sz], li, li/10+10)
			if err != nil {
				return fmt.Errorf("latency %d B: %w", sz, err)
			}
			latUS = us
		}
		if bw && sz > 0 {
			bi = bwIters(sz, scale)
			if err := barrier(c); err != nil {
				return err
			}
			v, err := bandwidth(c, sbuf[:sz], rbuf[:sz], bi, bi/10+2)
			if err != nil {
				return fmt.Errorf("bandwidth %d B: %w", sz, err)
			}
			mbps = v
		}
		if rank == 0 {
			fmt.Fprintf(out, "  %10d %12.3f %12.1f %8d %8d\n", sz, latUS, mbps, li, bi)
		}
	}
	return barrier(c)
}

// latency runs warm+iters blocking ping-pongs between ranks 0 and 1 and
// returns, on rank 0, the half round trip in µs of the last iters.
func latency(c *mpi.Comm, sbuf, rbuf []byte, iters, warm int) (float64, error) {
	switch c.Rank() {
	case 0:
		var t0 time.Time
		for i := range iters + warm {
			if i == warm {
				t0 = time.Now()
			}
			if err := mpi.Send(c, sbuf, 1, tagPP); err != nil {
				return 0, err
			}
			if _, err := mpi.Recv(c, rbuf, 1, tagPP); err != nil {
				return 0, err
			}
		}
		return float64(time.Since(t0).Nanoseconds()) / 1e3 / (2 * float64(iters)), nil
	case 1:
		for range iters + warm {
			if _, err := mpi.Recv(c, rbuf, 0, tagPP); err != nil {
				return 0, err
			}
			if err := mpi.Send(c, sbuf, 0, tagPP); err != nil {
				return 0, err
			}
		}
	}
	return 0, nil
}

// bandwidth runs warm+iters windows: rank 0 sends window messages with Isend,
// rank 1 receives them with Irecv and answers with a 4-byte ack. It returns,
// on rank 0, MB/s (10^6 B) over the last iters windows. As in pingpong.c all
// receives of a window target the same buffer.
func bandwidth(c *mpi.Comm, sbuf, rbuf []byte, iters, warm int) (float64, error) {
	reqs := make([]*mpi.Request, window)
	ack := []int32{0}
	switch c.Rank() {
	case 0:
		var t0 time.Time
		for i := range iters + warm {
			if i == warm {
				t0 = time.Now()
			}
			for w := range reqs {
				r, err := mpi.Isend(c, sbuf, 1, tagBW)
				if err != nil {
					return 0, waitAfter(err, reqs[:w])
				}
				reqs[w] = r
			}
			if err := mpi.WaitAll(reqs...); err != nil {
				return 0, err
			}
			if _, err := mpi.Recv(c, ack, 1, tagAck); err != nil {
				return 0, err
			}
		}
		el := time.Since(t0).Seconds()
		return float64(len(sbuf)) * window * float64(iters) / el / 1e6, nil
	case 1:
		for range iters + warm {
			for w := range reqs {
				r, err := mpi.Irecv(c, rbuf, 0, tagBW)
				if err != nil {
					return 0, waitAfter(err, reqs[:w])
				}
				reqs[w] = r
			}
			if err := mpi.WaitAll(reqs...); err != nil {
				return 0, err
			}
			if err := mpi.Send(c, ack, 0, tagAck); err != nil {
				return 0, err
			}
		}
	}
	return 0, nil
}

// waitAfter completes the requests already started before a failed post, so
// none is left running with our buffers, and returns err.
func waitAfter(err error, started []*mpi.Request) error {
	_ = mpi.WaitAll(started...)
	return err
}
