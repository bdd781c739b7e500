package launcher

import (
	"slices"
	"testing"
)

// TestWithRseqOff: ranks get glibc.pthread.rseq=0 added to GLIBC_TUNABLES,
// after whatever tunables are set already, and a setting of that tunable
// by the user stands. The caller's slice is left alone.
func TestWithRseqOff(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string // GLIBC_TUNABLES
	}{
		{[]string{"A=1"}, "glibc.pthread.rseq=0"},
		{[]string{"GLIBC_TUNABLES="}, "glibc.pthread.rseq=0"},
		{[]string{"GLIBC_TUNABLES=glibc.malloc.arena_max=2"}, "glibc.malloc.arena_max=2:glibc.pthread.rseq=0"},
		{[]string{"GLIBC_TUNABLES=glibc.pthread.rseq=1"}, "glibc.pthread.rseq=1"},
		{[]string{"GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.pthread.rseq=1"}, "glibc.malloc.arena_max=2:glibc.pthread.rseq=1"},
		// Another tunable whose name merely contains the text.
		{[]string{"GLIBC_TUNABLES=x.glibc.pthread.rseq=1"}, "x.glibc.pthread.rseq=1:glibc.pthread.rseq=0"},
		// The last entry is the one that counts, as in lookupEnv.
		{[]string{"GLIBC_TUNABLES=glibc.pthread.rseq=1", "GLIBC_TUNABLES=glibc.malloc.arena_max=2"}, "glibc.malloc.arena_max=2:glibc.pthread.rseq=0"},
	} {
		orig := slices.Clone(tc.env)
		got := withRseqOff(tc.env)
		if !slices.Equal(tc.env, orig) {
			t.Errorf("withRseqOff(%q) modified its argument: %q", orig, tc.env)
		}
		n := 0
		for _, kv := range got {
			if len(kv) >= 15 && kv[:15] == "GLIBC_TUNABLES=" {
				n++
			}
		}
		if v, _ := lookupEnv(got, "GLIBC_TUNABLES"); v != tc.want || n != 1 {
			t.Errorf("withRseqOff(%q) = %q: GLIBC_TUNABLES=%q in %d entries; want %q in one", orig, got, v, n, tc.want)
		}
		if tc.env[0] == "A=1" && !slices.Contains(got, "A=1") {
			t.Errorf("withRseqOff(%q) = %q: lost A=1", orig, got)
		}
	}
}
