package examples_test

// Integration tests: the real gorun binary launching real rank processes that
// talk through the real runtime. They check results, exit statuses, messages
// and that nothing outlives a job.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/gif"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var bin struct{ gorun, testprog, collcheck string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gorun-examples-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.gorun = filepath.Join(dir, "gorun")
	bin.testprog = filepath.Join(dir, "testprog")
	bin.collcheck = filepath.Join(dir, "collcheck")
	for _, b := range []struct {
		out, pkg string
		race     bool
	}{
		{bin.gorun, "../cmd/gorun", raceEnabled},
		{bin.testprog, "./internal/testprog", raceEnabled},
		// Never with -race: its serial checks of 1<<20-element results
		// run about ten times slower instrumented (over two minutes for
		// TestCollectives on 2 cores); the collectives run under the race
		// detector in their own package's in-process tests.
		{bin.collcheck, "./internal/collcheck", false},
	} {
		args := []string{"build", "-o", b.out}
		if b.race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, b.pkg)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// gorun runs the gorun binary with args and returns its exit code and output.
func gorun(t *testing.T, args ...string) result {
	t.Helper()
	return runIn(t, "", bin.gorun, args...)
}

// runIn runs program with args in dir ("" for the current directory) and
// returns its exit code and output.
func runIn(t *testing.T, dir, program string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", filepath.Base(program), args, err)
	}
	return result{code, stdout.String(), stderr.String()}
}

var pidLine = regexp.MustCompile(`(?m)^pid (\d+) (\d+) (\w*)$`)

// pids returns the rank pids a testprog job printed.
func pids(out string) []int {
	var ps []int
	for _, m := range pidLine.FindAllStringSubmatch(out, -1) {
		p, _ := strconv.Atoi(m[2])
		ps = append(ps, p)
	}
	return ps
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// requireGone fails if any pid is still running once gorun has exited.
func requireGone(t *testing.T, ps []int) {
	t.Helper()
	for _, p := range ps {
		if alive(p) {
			t.Errorf("rank process %d is still running after gorun exited", p)
		}
	}
}

// requireClean fails if a rank process or a shared-memory file of the job
// whose testprog output is out remains, or if out has no pid line to tell.
func requireClean(t *testing.T, out string) {
	t.Helper()
	requireGone(t, pids(out))
	m := pidLine.FindStringSubmatch(out)
	if m == nil {
		t.Errorf("no rank printed its pid and job: cannot check that nothing is left\n%s", out)
		return
	}
	if left, _ := filepath.Glob("/dev/shm/gorun-" + m[3] + "-*"); len(left) > 0 {
		t.Errorf("shared-memory files of job %s left behind: %v", m[3], left)
	}
}

// hasLine reports whether text has the line l.
func hasLine(text, l string) bool {
	return slices.Contains(strings.Split(text, "\n"), l)
}

func TestRing(t *testing.T) {
	for _, n := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			r := gorun(t, "-n", strconv.Itoa(n), "./ring", "-laps", "4")
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			want := fmt.Sprintf("ring of %d ranks: 4 laps, token %d (correct)", n, 4*n*(n-1)/2)
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
		})
	}
}

// TestGomaxprocsOversubscribed checks that a rank on a host running more
// ranks than CPUs gets GOMAXPROCS 1, unless the user set GOMAXPROCS, and
// that other ranks keep the Go default.
func TestGomaxprocsOversubscribed(t *testing.T) {
	ncpu := runtime.NumCPU()
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"oversubscribed", []string{"-n", strconv.Itoa(ncpu + 1)}, 1},
		{"user's choice", []string{"-n", strconv.Itoa(ncpu + 1), "-x", "GOMAXPROCS=3"}, 3},
		{"one per CPU", []string{"-n", "1"}, ncpu},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := gorun(t, append(tc.args, bin.testprog, "gomaxprocs")...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			n, _ := strconv.Atoi(tc.args[1])
			for rank := range n {
				if want := fmt.Sprintf("gomaxprocs %d %d", rank, tc.want); !hasLine(r.stdout, want) {
					t.Errorf("rank %d: no line %q in\n%s", rank, want, r.stdout)
				}
			}
			requireClean(t, r.stdout)
		})
	}
}

// TestIdleBarrier: ranks blocked in collectives.Barrier (through the
// communicator's shared memory, 4 ranks on this host) while rank 0 sleeps
// 1.5 s use almost no CPU: the wait spins about a millisecond, then sleeps
// on a futex.
func TestIdleBarrier(t *testing.T) {
	r := gorun(t, "-n", "4", bin.testprog, "idlebarrier", "1500")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	line := regexp.MustCompile(`(?m)^idlebarrier (\d+) ([0-9.]+) ([0-9.]+)$`)
	ms := line.FindAllStringSubmatch(r.stdout, -1)
	if len(ms) != 3 {
		t.Fatalf("%d ranks reported, want 3:\n%s", len(ms), r.stdout)
	}
	for _, m := range ms {
		wall, _ := strconv.ParseFloat(m[2], 64)
		cpu, _ := strconv.ParseFloat(m[3], 64)
		if wall < 1 {
			t.Errorf("rank %s left the barrier after %.3f s, before rank 0 joined", m[1], wall)
		}
		if cpu > 0.1 {
			t.Errorf("rank %s used %.3f s of CPU while blocked %.3f s in Barrier; want under 0.1 s", m[1], cpu, wall)
		}
	}
	requireClean(t, r.stdout)
}

func TestHello(t *testing.T) {
	r := gorun(t, "-n", "3", "./hello")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for rank := range 3 {
		if !strings.Contains(r.stdout, fmt.Sprintf("hello from rank %d of 3 on ", rank)) {
			t.Errorf("no hello from rank %d:\n%s", rank, r.stdout)
		}
	}
}

// TestFirstProgram: the program of the README's "Your first parallel
// program" is examples/first, and it runs as the README says: with
// "gorun -n 2 ." and alone with "go run .".
func TestFirstProgram(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Your first parallel program\n")
	_, code, ok2 := strings.Cut(section, "\n```go\n")
	code, _, ok3 := strings.Cut(code, "\n```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no Go code block in a section \"Your first parallel program\"")
	}
	file, err := os.ReadFile("first/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if code+"\n" != string(file) {
		t.Fatalf("the README's first program differs from examples/first/main.go; make them the same\nREADME:\n%s", code)
	}

	r := runIn(t, "first", bin.gorun, "-n", "2", ".")
	if want := "rank 1 got [3.14 2.72] from rank 0\n"; r.code != 0 || r.stdout != want {
		t.Errorf("gorun -n 2 .: exit %d, stdout %q; want 0 and %q\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() { // alone: no job to join
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "GORUN_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	r = runIn(t, "first", goTool, "run", ".")
	if want := "rank 0 is alone: no one to send to (run me with gorun -n 2 .)\n"; r.code != 0 || r.stdout != want {
		t.Errorf("go run .: exit %d, stdout %q; want 0 and %q\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
}

// TestExchange: every pair of 8 ranks exchanges messages of random sizes
// (0 to 8 MiB) and tags over shared memory, and 5 ranks over TCP; every
// element, the count, the tag and the per-sender order are checked, so a
// lost, duplicated, reordered or corrupted message fails the test.
func TestExchange(t *testing.T) {
	t.Run("shm/n=8", func(t *testing.T) { exchangeJob(t, 8, "24", strconv.Itoa(8<<20)) })
	t.Run("tcp/n=5", func(t *testing.T) { exchangeJob(t, 5, "24", strconv.Itoa(1<<20), "-x", "GORUN_TRANSPORT=tcp") })
}

func exchangeJob(t *testing.T, n int, count, maxBytes string, flags ...string) {
	args := append([]string{"-n", strconv.Itoa(n)}, flags...)
	r := gorun(t, append(args, bin.testprog, "exchange", count, maxBytes)...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for rank := range n {
		if !strings.Contains(r.stdout, fmt.Sprintf("rank %d exchanged ok", rank)) {
			t.Errorf("rank %d did not finish:\n%s\n%s", rank, r.stdout, r.stderr)
		}
	}
	requireClean(t, r.stdout)
}

var exitingLine = regexp.MustCompile(`(?m)^exiting 2 (\d+)$`)

// TestRankFails: one rank exits with status 3 while the others block
// receiving from it: gorun names the rank, exits 3 within 2 seconds of the
// failure and leaves nothing.
func TestRankFails(t *testing.T) {
	r := gorun(t, "-n", "4", bin.testprog, "fail", "2", "3")
	end := time.Now()
	if r.code != 3 {
		t.Fatalf("exit %d; want 3\nstderr:\n%s", r.code, r.stderr)
	}
	// The failing rank printed the wall-clock time just before exiting.
	if m := exitingLine.FindStringSubmatch(r.stdout); m == nil {
		t.Errorf("rank 2 did not say when it exited:\n%s", r.stdout)
	} else if ns, err := strconv.ParseInt(m[1], 10, 64); err != nil {
		t.Error(err)
	} else if d := end.Sub(time.Unix(0, ns)); d > 2*time.Second {
		t.Errorf("gorun ended %v after rank 2 failed; want within 2s", d.Round(time.Millisecond))
	}
	if !regexp.MustCompile(`gorun: rank 2 \(pid \d+ on host \S+\) exited with status 3`).MatchString(r.stderr) {
		t.Errorf("stderr does not name rank 2, its pid, host and status:\n%s", r.stderr)
	}
	if ps := pids(r.stdout); len(ps) != 4 {
		t.Errorf("saw %d pids; want 4\n%s", len(ps), r.stdout)
	}
	requireClean(t, r.stdout)
}

func TestRankKilled(t *testing.T) {
	r := gorun(t, "-n", "3", bin.testprog, "kill", "1", "0")
	if r.code != 128+9 {
		t.Fatalf("exit %d; want 137\nstderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "rank 1") || !strings.Contains(r.stderr, "signal 9") {
		t.Errorf("stderr does not name rank 1 and signal 9:\n%s", r.stderr)
	}
	requireClean(t, r.stdout)
}

// TestTimeout: --timeout ends a job of blocked ranks with status 124 and a
// message saying so, and leaves nothing.
func TestTimeout(t *testing.T) {
	r := gorun(t, "-n", "3", "--timeout", "2s", bin.testprog, "block")
	if r.code != 124 {
		t.Errorf("a job of blocked ranks under --timeout exited %d; want 124", r.code)
	}
	if want := "gorun: job timed out after 2s; stopping 3 ranks"; !hasLine(r.stderr, want) {
		t.Errorf("stderr lacks the line %q:\n%s", want, r.stderr)
	}
	requireClean(t, r.stdout)
}

// TestInterrupt: SIGINT to gorun while every rank is blocked in a receive
// ends the job with status 130 and a message saying so, and leaves no rank
// running and no shared-memory file.
func TestInterrupt(t *testing.T) {
	cmd := exec.Command(bin.gorun, "-n", "3", bin.testprog, "block")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Every rank prints its pid after Init; wait for all three.
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for len(pids(out.String())) < 3 && sc.Scan() {
		out.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // drain until gorun closes its stdout
		out.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("gorun after SIGINT: %v; want exit status 130\n%s", err, stderr.String())
	}
	if want := "gorun: interrupted; stopping 3 ranks"; !hasLine(stderr.String(), want) {
		t.Errorf("stderr lacks the line %q:\n%s", want, stderr.String())
	}
	if n := len(pids(out.String())); n != 3 {
		t.Errorf("saw %d pids; want 3\n%s", n, out.String())
	}
	requireClean(t, out.String())
}

// TestExitWithoutFinalize: a rank that exits 0 after Init without calling
// Finalize, while others wait on it, ends the job with a message saying so,
// instead of leaving the others hanging.
func TestExitWithoutFinalize(t *testing.T) {
	r := gorun(t, "-n", "3", bin.testprog, "nofinalize", "1")
	if r.code != 1 {
		t.Fatalf("exit %d; want 1\nstderr:\n%s", r.code, r.stderr)
	}
	if !regexp.MustCompile(`gorun: rank 1 \(pid \d+ on host \S+\) exited with status 0 without calling Finalize`).MatchString(r.stderr) {
		t.Errorf("stderr does not blame rank 1 for skipping Finalize:\n%s", r.stderr)
	}
	requireClean(t, r.stdout)
}

// TestGorunKilled: SIGKILL to gorun itself, while every rank is blocked in a
// receive over shared memory, leaves no rank process and no shared-memory
// file of the job behind.
func TestGorunKilled(t *testing.T) {
	cmd := exec.Command(bin.gorun, "-n", "3", bin.testprog, "block")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ps []int
	job := ""
	sc := bufio.NewScanner(stdout)
	for len(ps) < 3 && sc.Scan() {
		if m := pidLine.FindStringSubmatch(sc.Text()); m != nil {
			p, _ := strconv.Atoi(m[2])
			ps, job = append(ps, p), m[3]
		}
	}
	if len(ps) < 3 || job == "" {
		t.Fatalf("saw pids %v, job %q; want 3 pids and a job id", ps, job)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // killed: the error says so
	// The ranks are not our children: poll, bounded, for them to die.
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range ps {
		for alive(p) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(p) {
			t.Errorf("rank process %d survived gorun's SIGKILL", p)
		}
	}
	if left, _ := filepath.Glob("/dev/shm/gorun-" + job + "-*"); len(left) > 0 {
		t.Errorf("shared-memory files of job %s left behind: %v", job, left)
	}
}

var checksumLine = regexp.MustCompile(`(?m)^checksum of the final T and q: ([0-9a-f]{64})$`)

// TestWeather runs the weather example through gorun, alone and as 4 ranks
// over shared memory: the final fields are bitwise the same, and each run
// writes an animated GIF of several frames.
func TestWeather(t *testing.T) {
	run := func(n int, flags ...string) (sum string, out string) {
		t.Helper()
		out = t.TempDir()
		args := append([]string{"-n", strconv.Itoa(n)}, flags...)
		args = append(args, "./weather", "-nx", "37", "-ny", "23", "-steps", "20", "-every", "5", "-out", out)
		r := gorun(t, args...)
		if r.code != 0 {
			t.Fatalf("gorun %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
		}
		m := checksumLine.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("gorun %q printed no checksum line:\n%s", args, r.stdout)
		}
		if n > 1 {
			// Every pair of ranks talks through shared memory.
			for i := range n {
				for j := range n {
					if l := fmt.Sprintf("mpi: route %d->%d shm", i, j); i != j && !hasLine(r.stderr, l) {
						t.Errorf("-n %d: stderr lacks %q:\n%s", n, l, r.stderr)
					}
				}
			}
		}
		return m[1], out
	}
	alone, dir1 := run(1)
	four, dir4 := run(4, "-x", "GORUN_DEBUG=routes")
	if alone != four {
		t.Errorf("final fields differ: checksum %s with 1 rank, %s with 4", alone, four)
	}
	for _, dir := range []string{dir1, dir4} {
		f, err := os.Open(filepath.Join(dir, "weather.gif"))
		if err != nil {
			t.Fatal(err)
		}
		g, err := gif.DecodeAll(f)
		f.Close()
		if err != nil {
			t.Errorf("%s/weather.gif: %v", dir, err)
		} else if len(g.Image) <= 1 {
			t.Errorf("%s/weather.gif has %d frames; want several", dir, len(g.Image))
		}
	}
}
