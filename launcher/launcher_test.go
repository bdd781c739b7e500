package launcher_test

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/launcher"
	"github.com/gorun-hpc/gorun/launcher/launchertest"
)

// rankprog is the path of the test helper built by TestMain (see
// testdata/rankprog).
var rankprog string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "launcher-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rankprog, err = launchertest.Build(dir, launchertest.Rankprog)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a job printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// run runs cfg with rankprog as the program unless cfg.Program is set, and
// fails the test if Run returns an error.
func run(t *testing.T, cfg launcher.Config) result {
	t.Helper()
	if cfg.Program == "" {
		cfg.Program = rankprog
	}
	r, err := tryRun(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Run(n=%d, %q) error: %v\nstderr:\n%s", cfg.N, cfg.Args, err, r.stderr)
	}
	return r
}

// tryRun runs cfg and returns what it printed and returned.
func tryRun(ctx context.Context, cfg launcher.Config) (result, error) {
	var out, errs bytes.Buffer
	cfg.Stdout, cfg.Stderr = &out, &errs
	code, err := launcher.Run(ctx, cfg)
	return result{code: code, stdout: out.String(), stderr: errs.String()}, err
}

// lines splits s into lines without the final empty one.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// gorunLines returns the lines of s written by the launcher itself.
func gorunLines(s string) []string {
	var ls []string
	for _, l := range lines(s) {
		if strings.HasPrefix(l, "gorun:") {
			ls = append(ls, l)
		}
	}
	return ls
}

// wantLine is line i of rank r as rankprog prints it.
func wantLine(r, i int) string {
	return fmt.Sprintf("rank %d line %d %s", r, i, strings.Repeat(strconv.Itoa(r), 40+i%50))
}

// checkLines checks that text holds exactly count lines of each of n ranks,
// each intact and in order per rank, with prefix(r) before each.
func checkLines(t *testing.T, text string, n, count int, prefix func(r int) string) {
	t.Helper()
	next := make([]int, n)
	re := regexp.MustCompile(`^(\[\d+\] )?rank (\d+) line (\d+) `)
	for k, l := range lines(text) {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %d = %q: not a rankprog line", k, l)
		}
		r, _ := strconv.Atoi(m[2])
		if r < 0 || r >= n {
			t.Fatalf("line %d = %q: rank out of range", k, l)
		}
		if want := prefix(r) + wantLine(r, next[r]); l != want {
			t.Fatalf("line %d = %q; want %q", k, l, want)
		}
		next[r]++
	}
	for r, got := range next {
		if got != count {
			t.Errorf("rank %d: %d lines; want %d", r, got, count)
		}
	}
}

func noPrefix(int) string { return "" }

func TestOutputLinesIntact(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			t.Parallel()
			const count = 2000
			res := run(t, launcher.Config{N: n, Args: []string{"lines", strconv.Itoa(count), "errlines", "100"}})
			if res.code != 0 {
				t.Fatalf("code = %d; want 0\nstderr:\n%s", res.code, res.stderr)
			}
			checkLines(t, res.stdout, n, count, noPrefix)
			checkLines(t, res.stderr, n, 100, noPrefix)
		})
	}
}

func TestTagOutput(t *testing.T) {
	t.Parallel()
	res := run(t, launcher.Config{N: 3, TagOutput: true, Args: []string{"lines", "50", "errlines", "5"}})
	if res.code != 0 {
		t.Fatalf("code = %d; want 0\nstderr:\n%s", res.code, res.stderr)
	}
	tag := func(r int) string { return fmt.Sprintf("[%d] ", r) }
	checkLines(t, res.stdout, 3, 50, tag)
	checkLines(t, res.stderr, 3, 5, tag)
}

func TestOutputDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "out") // created by Run
	res := run(t, launcher.Config{N: 3, OutputDir: dir, Args: []string{"lines", "20", "errlines", "7"}})
	if res.code != 0 || res.stdout != "" || res.stderr != "" {
		t.Fatalf("code = %d, stdout %q, stderr %q; want 0 and nothing printed", res.code, res.stdout, res.stderr)
	}
	for r := range 3 {
		for _, c := range []struct {
			stream string
			count  int
		}{{"stdout", 20}, {"stderr", 7}} {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("rank.%d.%s", r, c.stream)))
			if err != nil {
				t.Fatal(err)
			}
			got := lines(string(b))
			if len(got) != c.count {
				t.Fatalf("rank.%d.%s: %d lines; want %d", r, c.stream, len(got), c.count)
			}
			for i, l := range got {
				if want := wantLine(r, i); l != want {
					t.Fatalf("rank.%d.%s line %d = %q; want %q", r, c.stream, i, l, want)
				}
			}
		}
	}
}

func TestLongLineAndMissingNewline(t *testing.T) {
	t.Parallel()
	const size = 200000
	res := run(t, launcher.Config{N: 2, TagOutput: true, Args: []string{"longline", strconv.Itoa(size)}})
	if res.code != 0 {
		t.Fatalf("code = %d; want 0\nstderr:\n%s", res.code, res.stderr)
	}
	if !strings.HasSuffix(res.stdout, "\n") {
		t.Errorf("output does not end with a newline")
	}
	total := make([]int, 2)
	for _, l := range lines(res.stdout) {
		var r int
		if _, err := fmt.Sscanf(l, "[%d] ", &r); err != nil || r < 0 || r > 1 {
			t.Fatalf("line %.40q...: no rank tag", l)
		}
		body := strings.TrimPrefix(l, fmt.Sprintf("[%d] ", r))
		if strings.Trim(body, "x") != "" {
			t.Fatalf("rank %d: piece mixes other text: %.60q", r, body)
		}
		if len(body) > 64<<10 {
			t.Fatalf("rank %d: piece of %d bytes; want at most 64 KiB", r, len(body))
		}
		total[r] += len(body)
	}
	for r, got := range total {
		if got != size {
			t.Errorf("rank %d: %d bytes forwarded; want %d", r, got, size)
		}
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	const n = 5
	vars := []string{"GORUN_RANK", "GORUN_SIZE", "GORUN_LOCAL_RANK", "GORUN_LOCAL_SIZE",
		"GORUN_HOST", "GORUN_JOB", "GORUN_RENDEZVOUS", "GORUN_TOKEN"}
	// An inherited GORUN_RANK (gorun started from a rank) must not leak;
	// glibc's rseq is turned off after the tunables already set.
	base := append(os.Environ(), "GORUN_RANK=77", "GORUN_TRANSPORT=tcp", "GLIBC_TUNABLES=glibc.malloc.arena_max=2")
	res := run(t, launcher.Config{N: n, BaseEnv: base, Args: append([]string{"env", "GORUN_TRANSPORT", "GLIBC_TUNABLES"}, vars...)})
	if res.code != 0 {
		t.Fatalf("code = %d; want 0\nstderr:\n%s", res.code, res.stderr)
	}
	got := make([]map[string]string, n)
	for _, l := range lines(res.stdout) {
		var r int
		var kv string
		if _, err := fmt.Sscanf(l, "env %d %s", &r, &kv); err != nil || r < 0 || r >= n {
			t.Fatalf("bad line %q", l)
		}
		if got[r] == nil {
			got[r] = map[string]string{}
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("rank %d: %s", r, l)
		}
		got[r][k] = v
	}
	host, _ := os.Hostname()
	for r, env := range got {
		if env == nil {
			t.Fatalf("rank %d printed nothing", r)
		}
		want := map[string]string{
			"GORUN_RANK": strconv.Itoa(r), "GORUN_LOCAL_RANK": strconv.Itoa(r),
			"GORUN_SIZE": strconv.Itoa(n), "GORUN_LOCAL_SIZE": strconv.Itoa(n),
			"GORUN_HOST": host, "GORUN_TRANSPORT": "tcp",
			"GORUN_JOB": got[0]["GORUN_JOB"], "GORUN_TOKEN": got[0]["GORUN_TOKEN"],
			"GORUN_RENDEZVOUS": got[0]["GORUN_RENDEZVOUS"],
			"GLIBC_TUNABLES":   "glibc.malloc.arena_max=2:glibc.pthread.rseq=0",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("rank %d: %s=%q; want %q", r, k, env[k], v)
			}
		}
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(got[0]["GORUN_JOB"]) {
		t.Errorf("GORUN_JOB = %q; want 8 hex digits", got[0]["GORUN_JOB"])
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(got[0]["GORUN_TOKEN"]) {
		t.Errorf("GORUN_TOKEN = %q; want 64 hex digits", got[0]["GORUN_TOKEN"])
	}
	if !strings.HasPrefix(got[0]["GORUN_RENDEZVOUS"], "127.0.0.1:") {
		t.Errorf("GORUN_RENDEZVOUS = %q; want 127.0.0.1:port", got[0]["GORUN_RENDEZVOUS"])
	}
}

// TestRanksWithoutRseq: a rank linked with glibc (a cgo program) runs
// without glibc's rseq registration, which it has when started directly.
// This checks the tunable gorun sets against the real C library.
func TestRanksWithoutRseq(t *testing.T) {
	t.Parallel()
	prog, err := launchertest.Build(t.TempDir(), "./testdata/rseqprog")
	if err != nil {
		t.Skipf("cannot build a cgo program here (no C compiler?): %v", err)
	}
	base := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GLIBC_TUNABLES=") })
	direct := exec.Command(prog)
	direct.Env = base
	out, err := direct.Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != "rseq registered" {
		t.Skipf("started directly, the program says %q (%v): this C library registers no rseq, nothing to turn off", got, err)
	}
	res := run(t, launcher.Config{N: 2, Program: prog, BaseEnv: base})
	if res.code != 0 {
		t.Fatalf("code = %d; want 0\nstderr:\n%s", res.code, res.stderr)
	}
	if got := lines(res.stdout); !slices.Equal(got, []string{"rseq free", "rseq free"}) {
		t.Errorf("ranks say %q; want rseq free in both", got)
	}
}

func TestExportEnv(t *testing.T) {
	t.Parallel()
	base := append(os.Environ(), "FOO=from-gorun")
	res := run(t, launcher.Config{
		N: 2, BaseEnv: base,
		Env:  []string{"FOO", "BAR=a,b=c", "NOT_SET_ANYWHERE", "EMPTY="},
		Args: []string{"env", "FOO", "BAR", "NOT_SET_ANYWHERE", "EMPTY"},
	})
	if res.code != 0 {
		t.Fatalf("code = %d; want 0\nstderr:\n%s", res.code, res.stderr)
	}
	for r := range 2 {
		for _, want := range []string{"FOO=from-gorun", "BAR=a,b=c", "NOT_SET_ANYWHERE unset", "EMPTY="} {
			if l := fmt.Sprintf("env %d %s", r, want); !slices.Contains(lines(res.stdout), l) {
				t.Errorf("missing %q in output:\n%s", l, res.stdout)
			}
		}
	}
}

func TestWdir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	res := run(t, launcher.Config{N: 2, Wdir: dir, Args: []string{"cwd"}})
	want, _ := filepath.EvalSymlinks(dir)
	for _, l := range lines(res.stdout) {
		_, wd, _ := strings.Cut(strings.TrimPrefix(l, "cwd "), " ")
		if got, _ := filepath.EvalSymlinks(wd); got != want {
			t.Errorf("%q: working directory %q; want %q", l, got, want)
		}
	}
	if len(lines(res.stdout)) != 2 {
		t.Errorf("output %q; want 2 lines", res.stdout)
	}
}

func TestStdinGoesToRankZeroOnly(t *testing.T) {
	t.Parallel()
	res := run(t, launcher.Config{N: 3, Stdin: strings.NewReader("hello\nworld"), Args: []string{"echo"}})
	want := []string{"stdin 0: hello", "stdin 0: world"}
	if got := lines(res.stdout); !slices.Equal(got, want) {
		t.Errorf("output %q; want %q", got, want)
	}
}

func TestStdinFile(t *testing.T) {
	t.Parallel()
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		w.WriteString("one\ntwo\n")
		w.Close() // closing gorun's stdin ends rank 0's
		res := run(t, launcher.Config{N: 2, Stdin: r, Args: []string{"echo"}})
		want := []string{"stdin 0: one", "stdin 0: two"}
		if got := lines(res.stdout); !slices.Equal(got, want) {
			t.Errorf("output %q; want %q", got, want)
		}
	})
	t.Run("open", func(t *testing.T) {
		t.Parallel()
		// The ranks exit without reading; a stdin that never ends must
		// not keep Run waiting.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		res := run(t, launcher.Config{N: 2, Stdin: r, Args: []string{"lines", "1"}})
		if res.code != 0 {
			t.Errorf("code = %d; want 0", res.code)
		}
	})
}

// readPids returns the pids that rankprog's barrier wrote to dir.
func readPids(t *testing.T, dir string, n int) []int {
	t.Helper()
	pids := make([]int, n)
	for r := range n {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("pid.%d", r)))
		if err != nil {
			t.Fatalf("rank %d wrote no pid: %v", r, err)
		}
		if pids[r], err = strconv.Atoi(string(b)); err != nil {
			t.Fatal(err)
		}
	}
	return pids
}

// checkGone fails the test if one of pids is still running.
func checkGone(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if !launchertest.Gone(pid) {
			t.Errorf("process %d is still running", pid)
		}
	}
}

func TestRankFailureStopsJob(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	tests := []struct {
		name string
		n    int
		args []string // after "barrier DIR"
		code int
		want string // the launcher's line, with %d for the failed rank's pid
		fail int    // the failed rank
	}{
		{"exit", 4, []string{"exit", "2", "3", "block"}, 3,
			"gorun: rank 2 (pid %d on host " + host + ") exited with status 3; stopping 3 other ranks", 2},
		{"sigkill", 3, []string{"killself", "1", "block"}, 137,
			"gorun: rank 1 (pid %d on host " + host + ") was killed by signal 9 (killed); stopping 2 other ranks", 1},
		{"others-ignore-sigterm", 3, []string{"ignoreterm", "exit", "0", "4", "block"}, 4,
			"gorun: rank 0 (pid %d on host " + host + ") exited with status 4; stopping 2 other ranks", 0},
		{"n=1-last-words", 1, []string{"errlines", "30", "exit", "0", "5"}, 5,
			"gorun: rank 0 (pid %d on host " + host + ") exited with status 5", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			res := run(t, launcher.Config{N: tt.n, Args: append([]string{"barrier", dir}, tt.args...)})
			pids := readPids(t, dir, tt.n)
			if res.code != tt.code {
				t.Errorf("code = %d; want %d", res.code, tt.code)
			}
			want := []string{fmt.Sprintf(tt.want, pids[tt.fail])}
			if got := gorunLines(res.stderr); !slices.Equal(got, want) {
				t.Errorf("launcher said %q; want %q\nstderr:\n%s", got, want, res.stderr)
			}
			// The report comes after the failed rank's own output.
			if ls := lines(res.stderr); ls[len(ls)-1] != want[0] {
				t.Errorf("last line of stderr %q; want the report", ls[len(ls)-1])
			}
			checkGone(t, pids...)
		})
	}
}

func TestRankExitingZeroDoesNotStopOthers(t *testing.T) {
	t.Parallel()
	// Rank 1 exits at once; rank 0 still prints its lines afterwards.
	res := run(t, launcher.Config{N: 2, Args: []string{"exit", "1", "0", "lines", "500"}})
	if res.code != 0 {
		t.Fatalf("code = %d; want 0\nstderr:\n%s", res.code, res.stderr)
	}
	if got := len(lines(res.stdout)); got != 500 {
		t.Errorf("%d lines; want 500", got)
	}
}

func TestRanksLearnOfFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Every rank connects; rank 2 then fails. The others ignore SIGTERM
	// and exit when the launcher's event reaches them.
	res := run(t, launcher.Config{N: 3, Args: []string{"connect", "ignoreterm", "barrier", dir, "exit", "2", "6", "block"}})
	if res.code != 6 {
		t.Errorf("code = %d; want 6\nstderr:\n%s", res.code, res.stderr)
	}
	for r := range 2 {
		prefix := fmt.Sprintf("event %d kind=rank-failed rank=2 code=6 text=rank 2 (pid ", r)
		if !strings.Contains(res.stdout, prefix) {
			t.Errorf("rank %d did not report the failure event; output:\n%s", r, res.stdout)
		}
	}
}

func TestAbort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	res := run(t, launcher.Config{N: 4, Args: []string{"connect", "barrier", dir, "abort", "2", "5", "bad input", "block"}})
	if res.code != 5 {
		t.Errorf("code = %d; want 5\nstderr:\n%s", res.code, res.stderr)
	}
	want := []string{"gorun: rank 2 called Abort(code 5): bad input; stopping 3 other ranks"}
	if got := gorunLines(res.stderr); !slices.Equal(got, want) {
		t.Errorf("launcher said %q; want %q", got, want)
	}
	checkGone(t, readPids(t, dir, 4)...)
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	res := run(t, launcher.Config{N: 3, Timeout: 200 * time.Millisecond, Args: []string{"ignoreterm", "block"}})
	if res.code != launcher.ExitTimeout {
		t.Errorf("code = %d; want %d", res.code, launcher.ExitTimeout)
	}
	want := []string{"gorun: job timed out after 200ms; stopping 3 ranks"}
	if got := gorunLines(res.stderr); !slices.Equal(got, want) {
		t.Errorf("launcher said %q; want %q", got, want)
	}
}

func TestInterrupt(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cause error
		code  int
	}{
		{launcher.Interrupt{Signal: syscall.SIGINT}, 130},
		{launcher.Interrupt{Signal: syscall.SIGTERM}, 143},
		{errors.New("caller gave up"), 130},
	} {
		t.Run(fmt.Sprint(tt.code, "/", tt.cause), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			done := make(chan result, 1)
			go func() { // exits when Run returns; joined by the receive below
				r, err := tryRun(ctx, launcher.Config{N: 3, Program: rankprog, Args: []string{"barrier", dir, "block"}})
				if err != nil {
					r.stderr += err.Error()
				}
				done <- r
			}()
			launchertest.WaitFiles(t, dir, "pid.*", 3)
			cancel(tt.cause)
			res := <-done
			if res.code != tt.code {
				t.Errorf("code = %d; want %d", res.code, tt.code)
			}
			want := []string{"gorun: interrupted; stopping 3 ranks"}
			if got := gorunLines(res.stderr); !slices.Equal(got, want) {
				t.Errorf("launcher said %q; want %q", got, want)
			}
			checkGone(t, readPids(t, dir, 3)...)
		})
	}
}

func TestShellChildrenAreStopped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Rank 0 is a shell with a background child; rank 1 fails once the
	// child runs. Stopping rank 0's process group must stop the child.
	script := `if [ "$GORUN_RANK" = 0 ]; then
	sleep 1000 & echo $! > "$D/child.tmp"; mv "$D/child.tmp" "$D/child"; wait
else
	while [ ! -e "$D/child" ]; do sleep 0.01; done; exit 9
fi`
	res := run(t, launcher.Config{N: 2, Program: "sh", Args: []string{"-c", script}, Env: []string{"D=" + dir}})
	if res.code != 9 {
		t.Errorf("code = %d; want 9\nstderr:\n%s", res.code, res.stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	launchertest.WaitGone(t, pid)
}

func TestSharedMemoryRemoved(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	res := run(t, launcher.Config{N: 2, Program: "sh", Args: []string{"-c",
		`touch "/dev/shm/gorun-$GORUN_JOB-rank$GORUN_RANK" && echo "$GORUN_JOB"`}})
	if res.code != 0 {
		t.Fatalf("code = %d; want 0\nstderr:\n%s", res.code, res.stderr)
	}
	job := lines(res.stdout)[0]
	if left, _ := filepath.Glob("/dev/shm/gorun-" + job + "-*"); len(left) > 0 {
		t.Errorf("left behind: %q", left)
	}
}

func TestProgramArgsUntouched(t *testing.T) {
	t.Parallel()
	args := []string{"args", "-steps", "100", "--tag-output", "-n", "3", "a b"}
	res := run(t, launcher.Config{N: 1, Args: args})
	var want []string
	for _, a := range args {
		want = append(want, "arg 0 "+a)
	}
	if got := lines(res.stdout); !slices.Equal(got, want) {
		t.Errorf("program saw %q; want %q", got, want)
	}
}

func TestCommandOnPath(t *testing.T) {
	t.Parallel()
	res := run(t, launcher.Config{N: 3, Program: "echo", Args: []string{"hi"}})
	if res.code != 0 || res.stdout != "hi\nhi\nhi\n" {
		t.Errorf("code %d, output %q; want 0 and three lines", res.code, res.stdout)
	}
}

// writeModule writes a Go module with one main package to a new directory.
func writeModule(t *testing.T, main string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "prog")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"go.mod": "module example.com/prog\n\ngo 1.26\n", "main.go": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestGoPackage(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	// Not parallel: TMPDIR is changed to check the build directory is removed.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Run("builds", func(t *testing.T) {
		dir := writeModule(t, `package main

import ("fmt"; "os")

func main() { fmt.Println("hello from", os.Getenv("GORUN_RANK"), os.Args[1]) }
`)
		res := run(t, launcher.Config{N: 2, Program: dir, Args: []string{"arg"}})
		got := lines(res.stdout)
		slices.Sort(got)
		if want := []string{"hello from 0 arg", "hello from 1 arg"}; res.code != 0 || !slices.Equal(got, want) {
			t.Errorf("code %d, output %q; want 0 and %q\nstderr:\n%s", res.code, got, want, res.stderr)
		}
	})
	// "." and ".." are package directories, as for "go run"; other bare
	// names are still commands on PATH, even if a file of that name is here.
	t.Run("dot-and-dotdot", func(t *testing.T) {
		dir := writeModule(t, `package main

import ("fmt"; "os")

func main() { fmt.Println("package main of rank", os.Getenv("GORUN_RANK")) }
`)
		sub := filepath.Join(dir, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "echo"), []byte("#!/bin/sh\necho local echo\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		want := []string{"package main of rank 0", "package main of rank 1"}
		for _, tc := range []struct{ cwd, program string }{{dir, "."}, {sub, ".."}} {
			t.Chdir(tc.cwd)
			res, err := tryRun(t.Context(), launcher.Config{N: 2, Program: tc.program})
			got := lines(res.stdout)
			slices.Sort(got)
			if err != nil || res.code != 0 || !slices.Equal(got, want) {
				t.Errorf("Program %q in %s: code %d, error %v, output %q; want 0 and %q\nstderr:\n%s",
					tc.program, tc.cwd, res.code, err, got, want, res.stderr)
			}
		}
		t.Chdir(dir)
		res := run(t, launcher.Config{N: 1, Program: "echo", Args: []string{"from PATH"}})
		if res.code != 0 || res.stdout != "from PATH\n" {
			t.Errorf("Program \"echo\" beside a file named echo: code %d, output %q; want the echo on PATH", res.code, res.stdout)
		}
	})
	t.Run("compile-error", func(t *testing.T) {
		dir := writeModule(t, "package main\n\nfunc main() { undefinedThing() }\n")
		res, err := tryRun(t.Context(), launcher.Config{N: 2, Program: dir})
		if err == nil || errors.Is(err, launcher.ErrUsage) || res.code != launcher.ExitFailure {
			t.Errorf("Run = %d, %v; want %d and a build error", res.code, err, launcher.ExitFailure)
		}
		if !strings.Contains(res.stderr, "undefined: undefinedThing") {
			t.Errorf("compiler error not shown; stderr:\n%s", res.stderr)
		}
	})
	// go/build, which Resolve asks, sees package main; go build, with the
	// tag from GOFLAGS, sees package lib and makes no executable.
	t.Run("not-main-when-built", func(t *testing.T) {
		dir := writeModule(t, "//go:build !gorunlib\n\npackage main\n\nfunc main() {}\n")
		if err := os.WriteFile(filepath.Join(dir, "lib.go"), []byte("//go:build gorunlib\n\npackage lib\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("GOFLAGS", "-tags=gorunlib")
		res, err := tryRun(t.Context(), launcher.Config{N: 2, Program: dir})
		want := fmt.Sprintf("launcher: program %q is a library package, not a main package: gorun runs commands (package main, with a func main), as go run does", dir)
		if !errors.Is(err, launcher.ErrUsage) || res.code != launcher.ExitUsage || err.Error() != want {
			t.Errorf("Run = %d, %v; want %d and %q", res.code, err, launcher.ExitUsage, want)
		}
	})
	if left, _ := filepath.Glob(filepath.Join(tmp, "gorun-build-*")); len(left) > 0 {
		t.Errorf("build directories left behind: %q", left)
	}
}

// TestMissingLoader: a dynamically linked executable whose loader does not
// exist fails to start with a message naming the loader.
func TestMissingLoader(t *testing.T) {
	t.Parallel()
	exe, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true command")
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Skipf("%s is not an ELF file: %v", exe, err)
	}
	const loader = "/nonexistent/ld.so"
	patched := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP && p.Filesz > uint64(len(loader)) {
			// Same size, NUL padded: the kernel then looks for loader.
			interp := b[p.Off : p.Off+p.Filesz]
			clear(interp)
			copy(interp, loader)
			patched = true
		}
	}
	if !patched {
		t.Skipf("%s is not dynamically linked", exe)
	}
	prog := filepath.Join(t.TempDir(), "true")
	if err := os.WriteFile(prog, b, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := tryRun(t.Context(), launcher.Config{N: 2, Program: prog})
	want := "launcher: cannot start " + prog + ": the program exists but its loader " + loader + " does not exist; it was built for another system or C library: rebuild it here, or link it statically"
	if !errors.Is(err, launcher.ErrUsage) || res.code != launcher.ExitUsage || err.Error() != want {
		t.Errorf("Run = %d, %v; want %d and %q", res.code, err, launcher.ExitUsage, want)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	notProg := filepath.Join(dir, "text")
	if err := os.WriteFile(notProg, []byte("no #! line\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noInterp := filepath.Join(dir, "script")
	if err := os.WriteFile(noInterp, []byte("#!/nonexistent/sh -e\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "lib")
	if err := os.Mkdir(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"go.mod": "module example.com/lib\n\ngo 1.26\n", "lib.go": "package lib\n\nfunc F() {}\n"} {
		if err := os.WriteFile(filepath.Join(lib, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		cfg  launcher.Config
		want string
	}{
		{"n=0", launcher.Config{N: 0, Program: rankprog}, "at least 1, got 0"},
		{"n=-3", launcher.Config{N: -3, Program: rankprog}, "at least 1, got -3"},
		{"no-program", launcher.Config{N: 1, Program: ""}, "no program given"},
		{"nonexistent-path", launcher.Config{N: 1, Program: "./no/such/prog"}, `"./no/such/prog" does not exist`},
		{"not-on-path", launcher.Config{N: 1, Program: "no-such-command-gorun"}, "not found on PATH"},
		{"not-executable", launcher.Config{N: 1, Program: notExec}, "is not executable"},
		{"not-a-program", launcher.Config{N: 2, Program: notProg}, "not a program for this system"},
		{"dir-without-go", launcher.Config{N: 1, Program: dir}, "directory without .go files"},
		{"missing-interpreter", launcher.Config{N: 2, Program: noInterp},
			"cannot start " + noInterp + `: the program exists but its interpreter /nonexistent/sh, named by its first line "#!/nonexistent/sh -e", does not exist; install it or correct the #! line`},
		{"not-main-package", launcher.Config{N: 2, Program: lib},
			fmt.Sprintf("program %q is package lib, not a main package: gorun runs commands (package main, with a func main)", lib)},
		{"bad-wdir", launcher.Config{N: 1, Program: rankprog, Wdir: filepath.Join(dir, "missing")}, "working directory"},
		{"bad-x", launcher.Config{N: 1, Program: rankprog, Env: []string{"=v"}}, "want NAME or NAME=VALUE"},
		{"x-launcher-var", launcher.Config{N: 1, Program: rankprog, Env: []string{"GORUN_RANK=3"}}, "gorun sets GORUN_RANK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := tryRun(t.Context(), tt.cfg)
			if !errors.Is(err, launcher.ErrUsage) || res.code != launcher.ExitUsage {
				t.Fatalf("Run = %d, %v; want %d and ErrUsage", res.code, err, launcher.ExitUsage)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "launcher: ") {
				t.Errorf("error %q; want it to start with \"launcher: \" and contain %q", err, tt.want)
			}
			if res.stdout != "" || res.stderr != "" {
				t.Errorf("printed %q %q; want nothing", res.stdout, res.stderr)
			}
		})
	}
}
