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
// every rank.
func TestCollectives(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			start := time.Now()
			r := gorun(t, "-n", strconv.Itoa(n), "-x", "GORUN_DEBUG=routes", bin.collcheck)
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
			for i := range n { // every pair of ranks talked through shared memory
				for j := range n {
					if l := fmt.Sprintf("mpi: route %d->%d shm", i, j); i != j && !hasLine(r.stderr, l) {
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
