package examples_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var collcheckOK = regexp.MustCompile(`(?m)^collcheck ok: (\d+) ranks, (\d+) checks$`)

// TestCollectives runs every collective in real rank processes launched by
// gorun, talking over shared memory, and checks each result against a
// serial computation (internal/collcheck): on the world and on a split
// communicator, counts 0, 1, 7, 1000 and 1<<20 (the latter for Allreduce,
// Iallreduce, Bcast, Reduce and Gather), every root, every operation; and a
// 1<<20-element float64 Allreduce of inexact sums is bitwise the same on
// every rank. One more job of 5 ranks runs the small counts over TCP.
func TestCollectives(t *testing.T) {
	type job struct {
		n         int
		transport string
	}
	jobs := []job{{1, "shm"}, {2, "shm"}, {3, "shm"}, {4, "shm"}, {5, "shm"}, {7, "shm"}, {8, "shm"}, {5, "tcp"}}
	for _, j := range jobs {
		n := j.n
		t.Run(fmt.Sprintf("%s/n=%d", j.transport, n), func(t *testing.T) {
			args := []string{"-n", strconv.Itoa(n), "-x", "GORUN_DEBUG=routes"}
			if j.transport == "tcp" {
				args = append(args, "-x", "GORUN_TRANSPORT=tcp", bin.collcheck, "-big=false")
			} else {
				args = append(args, bin.collcheck)
			}
			start := time.Now()
			r := gorun(t, args...)
			t.Logf("%d ranks: %v", n, time.Since(start).Round(time.Millisecond))
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\nstderr:\n%s", r.code, mismatches(r.stdout), r.stderr)
			}
			m := collcheckOK.FindStringSubmatch(r.stdout)
			if m == nil {
				t.Fatalf("no summary line\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
			if m[1] != strconv.Itoa(n) {
				t.Errorf("summary names %s ranks; want %d: %s", m[1], n, m[0])
			}
			// Every rank checks hundreds of results.
			if c, _ := strconv.Atoi(m[2]); c < 500*n {
				t.Errorf("only %d checks over %d ranks: %s", c, n, m[0])
			}
			for a := range n { // every pair of ranks talked through the transport
				for b := range n {
					if l := fmt.Sprintf("mpi: route %d->%d %s", a, b, j.transport); a != b && !hasLine(r.stderr, l) {
						t.Errorf("stderr lacks %q:\n%s", l, r.stderr)
					}
				}
			}
			requireClean(t, r.stdout)
		})
	}
}

// mismatches returns the MISMATCH and ERROR lines of out, or all of out if
// it has none.
func mismatches(out string) string {
	var b strings.Builder
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, "MISMATCH ") || strings.HasPrefix(l, "ERROR ") {
			b.WriteString(l)
		}
	}
	if b.Len() == 0 {
		return "stdout:\n" + out
	}
	return b.String()
}
