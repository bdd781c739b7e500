package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

func TestParseArgs(t *testing.T) {
	good := []struct {
		args []string
		want config
	}{
		{[]string{"latency"}, config{cmd: "latency", scale: 1, laps: 2000, bytes: 8, secs: 3}},
		{[]string{"bw", "0.25"}, config{cmd: "bw", scale: 0.25, laps: 2000, bytes: 8, secs: 3}},
		{[]string{"ring", "50"}, config{cmd: "ring", scale: 1, laps: 50, bytes: 8, secs: 3}},
		{[]string{"ring", "50", "0"}, config{cmd: "ring", scale: 1, laps: 50, bytes: 0, secs: 3}},
		{[]string{"idle", "0.5"}, config{cmd: "idle", scale: 1, laps: 2000, bytes: 8, secs: 0.5}},
		{[]string{"coll"}, config{cmd: "coll", scale: 1, laps: 2000, bytes: 8, secs: 3, target: 0.5}},
		{[]string{"alltoall", "0.01"}, config{cmd: "alltoall", scale: 1, laps: 2000, bytes: 8, secs: 3, target: 0.01}},
	}
	for _, g := range good {
		got, err := parseArgs(g.args)
		if err != nil || got != g.want {
			t.Errorf("parseArgs(%q) = %+v, %v; want %+v", g.args, got, err, g.want)
		}
	}
	for _, bad := range [][]string{
		nil, {"nope"}, {"--help"}, {"latency", "0"}, {"latency", "x"}, {"bw", "1", "2"},
		{"ring", "0"}, {"ring", "10", "-1"}, {"ring", "1", "2", "3"}, {"idle", "-1"},
		{"coll", "0"}, {"bcast", "NaN"}, {"barrier", "+Inf"}, {"allreduce", "1", "2"},
	} {
		if _, err := parseArgs(bad); !errors.Is(err, errUsage) {
			t.Errorf("parseArgs(%q) error = %v; want a usage error", bad, err)
		}
	}
}

// runJob runs cfg as n in-process ranks and returns what rank 0 printed.
func runJob(t *testing.T, n int, cfg config) string {
	t.Helper()
	var mu sync.Mutex
	var out bytes.Buffer
	err := mpitest.Go(t.Context(), n, func(c *mpi.Comm) error {
		var b bytes.Buffer
		err := bench(c, cfg, &b)
		if c.Rank() != 0 && b.Len() > 0 {
			t.Errorf("rank %d printed %q; only rank 0 should print", c.Rank(), b.String())
		}
		mu.Lock()
		out.Write(b.Bytes())
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatalf("%s on %d ranks: %v", cfg.cmd, n, err)
	}
	return out.String()
}

// rows parses pingpong output the way compare.sh does: data lines have five
// fields, the first an integer size.
func rows(t *testing.T, out string) map[int][]float64 {
	t.Helper()
	m := map[int][]float64{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if strings.HasPrefix(line, "#") || len(f) != 5 {
			continue
		}
		sz, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("bad row %q", line)
		}
		for _, s := range f[1:] {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("bad row %q", line)
			}
			m[sz] = append(m[sz], v)
		}
	}
	return m
}

func TestPingpongRows(t *testing.T) {
	if testing.Short() {
		t.Skip("moves about 1 GB in memory")
	}
	// The third rank only joins the barriers.
	out := runJob(t, 3, config{cmd: "pingpong", scale: 0.0001})
	if !strings.HasPrefix(out, "# library: gorun") ||
		!strings.Contains(out, "\n#     size_B       lat_us      bw_MBps   lat_it    bw_it\n") {
		t.Errorf("missing header in\n%s", out)
	}
	m := rows(t, out)
	if len(m) != len(sizes) {
		t.Fatalf("%d rows, want %d:\n%s", len(m), len(sizes), out)
	}
	for _, sz := range sizes {
		r := m[sz] // lat_us bw_MBps lat_it bw_it
		wantBWIt := 3.0
		if sz == 0 {
			wantBWIt = 0 // no bandwidth for empty messages, as in pingpong.c
		}
		if r[0] <= 0 || (sz > 0) != (r[1] > 0) || r[2] != 10 || r[3] != wantBWIt {
			t.Errorf("size %d: row %v", sz, r)
		}
	}
}

func TestLatencyOnly(t *testing.T) {
	m := rows(t, runJob(t, 2, config{cmd: "latency", scale: 0.0001}))
	for _, sz := range sizes {
		if r := m[sz]; len(r) != 4 || r[0] <= 0 || r[1] != 0 || r[3] != 0 {
			t.Errorf("size %d: row %v; want a latency and no bandwidth", sz, r)
		}
	}
}

func TestRingAndIdle(t *testing.T) {
	out := runJob(t, 5, config{cmd: "ring", laps: 20, bytes: 100})
	if !strings.HasPrefix(out, "ring n=5 bytes=100 laps=20 us_per_hop=") {
		t.Errorf("ring printed %q", out)
	}
	out = runJob(t, 2, config{cmd: "idle", secs: 0.05})
	var wall, cpu float64
	if _, err := fmt.Sscanf(out, "idle wait %f s wall, %f s cpu", &wall, &cpu); err != nil || wall < 0.04 {
		t.Errorf("idle printed %q (wall %v, cpu %v, err %v)", out, wall, cpu, err)
	}
}

func TestNeedsTwoRanks(t *testing.T) {
	err := mpitest.Go(t.Context(), 1, func(c *mpi.Comm) error {
		return bench(c, config{cmd: "latency", scale: 1}, &bytes.Buffer{})
	})
	var nr *needRanksError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "gorun -n 2") {
		t.Errorf("size 1: error %v; want a needRanksError naming gorun -n 2", err)
	}
}

// collRow is one data line of coll.c's format.
type collRow struct {
	op           string
	count, bytes int
	maxUS, mean  float64
	iters        int
}

// collRows parses coll output the way compare.sh does: data lines have six
// fields, op count bytes max_us mean_us iters.
func collRows(t *testing.T, out string) []collRow {
	t.Helper()
	var rs []collRow
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "#") {
			if strings.Contains(line, "WARNING") {
				t.Errorf("%s", line)
			}
			continue
		}
		var r collRow
		if n, err := fmt.Sscanf(line, "%s %d %d %g %g %d\n", &r.op, &r.count, &r.bytes, &r.maxUS, &r.mean, &r.iters); err != nil || n != 6 {
			t.Fatalf("bad row %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// wantColl lists the (op, count, bytes) rows coll prints for ops.
func wantColl(ops ...string) []collRow {
	var w []collRow
	for _, op := range ops {
		switch op {
		case "allreduce":
			for _, n := range allreduceCounts {
				w = append(w, collRow{op: op, count: n, bytes: 8 * n})
			}
		case "bcast":
			for _, n := range bcastBytes {
				w = append(w, collRow{op: op, count: n, bytes: n})
			}
		case "barrier":
			w = append(w, collRow{op: op})
		case "alltoall":
			for _, n := range alltoallBytes {
				w = append(w, collRow{op: op, count: n, bytes: n})
			}
		}
	}
	return w
}

func TestCollRows(t *testing.T) {
	for _, tc := range []struct {
		n   int
		cmd string
		ops []string
	}{
		{3, "coll", collOps},
		{1, "barrier", []string{"barrier"}},
		{2, "bcast", []string{"bcast"}},
	} {
		out := runJob(t, tc.n, config{cmd: tc.cmd, target: 1e-4})
		if !strings.HasPrefix(out, "# library: gorun") ||
			!strings.Contains(out, fmt.Sprintf("\n# ranks: %d  target_s_per_test: 0.00\n", tc.n)) ||
			!strings.Contains(out, "\n# op              count      bytes       max_us      mean_us    iters\n") {
			t.Errorf("%s: missing header in\n%s", tc.cmd, out)
		}
		got, want := collRows(t, out), wantColl(tc.ops...)
		if len(got) != len(want) {
			t.Fatalf("%s n=%d: %d rows, want %d:\n%s", tc.cmd, tc.n, len(got), len(want), out)
		}
		for i, g := range got {
			w := want[i]
			if g.op != w.op || g.count != w.count || g.bytes != w.bytes ||
				!(g.maxUS > 0) || !(g.mean > 0) || g.mean > g.maxUS+0.001 || // both rounded to 3 decimals
				g.iters < collMinIters || g.iters > collMaxIters {
				t.Errorf("%s n=%d: row %+v; want op %s count %d bytes %d", tc.cmd, tc.n, g, w.op, w.count, w.bytes)
			}
		}
	}
}
