package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
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

	"github.com/gorun-hpc/gorun/launcher/launchertest"
)

// Built by TestMain: the gorun command and the launcher's test helper.
var gorunBin, rankprog string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gorun-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gorunBin, err = launchertest.Build(dir, ".")
	if err == nil {
		rankprog, err = launchertest.Build(dir, launchertest.Rankprog)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gorun runs the command in-process with args after "gorun" and returns its
// exit status and output. Tests using it must not be parallel: urfave/cli
// writes to its package-level help and version flags on every run.
func gorun(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = run(append([]string{"gorun"}, args...), strings.NewReader(stdin), &out, &errs)
	return code, out.String(), errs.String()
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string // the one line on stderr
	}{
		// Flags are named as typed: package flag writes -bogus for --bogus.
		{"unknown-flag", []string{"--bogus", rankprog}, 2,
			"gorun: unknown flag --bogus; gorun's flags go before PROGRAM (see gorun --help)"},
		{"unknown-flag-one-dash", []string{"-bogus", rankprog}, 2,
			"gorun: unknown flag -bogus; gorun's flags go before PROGRAM (see gorun --help)"},
		{"unknown-flag-with-value", []string{"-n", "2", "--bogus=1", rankprog}, 2,
			"gorun: unknown flag --bogus; gorun's flags go before PROGRAM (see gorun --help)"},
		{"daemon-unknown-flag", []string{"daemon", "--bogus"}, 2,
			"gorun: unknown flag --bogus for gorun daemon (see gorun daemon --help)"},
		{"secret-flag-without-value", []string{"secret", "--out"}, 2,
			"gorun: flag needs an argument: --out (see gorun secret --help)"},
		{"n=0", []string{"-n", "0", rankprog}, 2,
			"gorun: the number of ranks (-n) must be at least 1, got 0"},
		{"np=-2", []string{"-np", "-2", rankprog}, 2,
			"gorun: the number of ranks (-n) must be at least 1, got -2"},
		{"n-not-a-number", []string{"-n", "many", rankprog}, 2,
			`gorun: invalid value "many" for flag -n: parse error (see gorun --help)`},
		{"missing-program", []string{"-n", "2"}, 2,
			"gorun: missing PROGRAM; usage: gorun [flags] PROGRAM [ARGS...] (see gorun --help)"},
		{"no-args", nil, 2,
			"gorun: missing PROGRAM; usage: gorun [flags] PROGRAM [ARGS...] (see gorun --help)"},
		{"nonexistent", []string{"-n", "2", "./no-such-program"}, 2,
			`gorun: program "./no-such-program" does not exist`},
		{"not-on-path", []string{"no-such-command-gorun"}, 2,
			`gorun: program "no-such-command-gorun" not found on PATH; give a path (./no-such-command-gorun), a command on PATH or a Go package directory`},
		{"bad-timeout", []string{"--timeout", "soon", rankprog}, 2,
			`gorun: invalid value "soon" for flag --timeout: want a duration such as 90s or 5m, or seconds (see gorun --help)`},
		{"bad-bool", []string{"--tag-output=maybe", rankprog}, 2,
			`gorun: invalid boolean value "maybe" for --tag-output: parse error (see gorun --help)`},
		{"daemon-no-secret", []string{"daemon", "--listen", "127.0.0.1:0", "--secret-file", "/no/such/secret"}, 2,
			`gorun: secret file /no/such/secret does not exist; make one with "gorun secret --out /no/such/secret" and copy it to every host (mode 0600)`},
		{"host-and-hostfile", []string{"--host", "a", "--hostfile", "f", rankprog}, 2,
			"gorun: give either --hostfile or --host, not both (see gorun --help)"},
		{"stage-without-hosts", []string{"--stage", rankprog}, 2,
			"gorun: --stage needs --hostfile or --host (without them the job runs on this machine) (see gorun --help)"},
		{"bad-map-by", []string{"--host", "a", "--map-by", "core2", rankprog}, 2,
			`gorun: --map-by "core2": want slot or node (see gorun --help)`},
		{"bad-host", []string{"--host", "a:x", rankprog}, 2,
			`gorun: --host item 1: "a:x": slots must be a positive number (write a:4)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := gorun(t, "", tt.args...)
			if code != tt.code {
				t.Errorf("gorun %q exited %d; want %d", tt.args, code, tt.code)
			}
			if got := lines(stderr); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("gorun %q said %q; want %q", tt.args, got, tt.want)
			}
			if stdout != "" {
				t.Errorf("gorun %q printed %q on stdout; want nothing", tt.args, stdout)
			}
		})
	}
}

func TestNotExecutable(t *testing.T) {
	f := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := gorun(t, "", "-n", "2", f)
	want := fmt.Sprintf("gorun: program %q is not executable (chmod +x %s)", f, f)
	if code != 2 || strings.TrimSpace(stderr) != want {
		t.Errorf("exit %d, %q; want 2, %q", code, stderr, want)
	}
}

// children returns the pids of this process's children, from
// /proc/self/task/*/children.
func children(t *testing.T) []int {
	t.Helper()
	files, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil || len(files) == 0 {
		t.Skipf("cannot list child processes: %v", err)
	}
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range strings.Fields(string(b)) {
			p, err := strconv.Atoi(w)
			if err != nil {
				t.Fatalf("%s: %q", f, b)
			}
			pids = append(pids, p)
		}
	}
	return pids
}

// TestStartFailures: a PROGRAM that cannot start is reported as such, with
// status 2, and nothing is left running or on disk.
func TestStartFailures(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where a build directory would be left
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/nonexistent/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, program, want string
	}{
		{"library-package", "../../runtime/mpi",
			`gorun: program "../../runtime/mpi" is package mpi, not a main package: gorun runs commands (package main, with a func main), as go run does`},
		{"missing-interpreter", script,
			"gorun: cannot start " + script + `: the program exists but its interpreter /nonexistent/sh, named by its first line "#!/nonexistent/sh", does not exist; install it or correct the #! line`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := children(t)
			code, stdout, stderr := gorun(t, "", "-n", "2", tt.program)
			if got := lines(stderr); code != 2 || !slices.Equal(got, []string{tt.want}) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, got, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q; want nothing", stdout)
			}
			for _, p := range children(t) {
				if !slices.Contains(before, p) {
					t.Errorf("process %d, started by gorun, is still running or unreaped", p)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
				t.Errorf("left behind: %q", left)
			}
		})
	}
}

func TestCompileError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bad")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"go.mod":  "module example.com/bad\n\ngo 1.26\n",
		"main.go": "package main\n\nfunc main() { notDefined() }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := gorun(t, "", "-n", "2", dir)
	if code != 1 || !strings.Contains(stderr, "undefined: notDefined") ||
		!strings.Contains(stderr, "gorun: cannot build Go package "+dir) {
		t.Errorf("exit %d, stderr:\n%s\nwant 1, the compiler's error and gorun's line", code, stderr)
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, stdout, _ := gorun(t, "", "--version")
	if code != 0 || !strings.HasPrefix(stdout, "gorun version ") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
	code, stdout, _ = gorun(t, "", "--help")
	for _, want := range []string{"gorun [flags] PROGRAM [ARGS...]", "Examples:", "--tag-output", "-x NAME=VALUE", "daemon"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("--help: exit %d, output lacks %q", code, want)
		}
	}
}

func TestFlags(t *testing.T) {
	wdir := t.TempDir()
	outDir := filepath.Join(t.TempDir(), "out")
	t.Setenv("GORUN_TEST_COPY", "copied")
	tests := []struct {
		name string
		args []string
		want []string // stdout lines, sorted
	}{
		{"program-flags-untouched", []string{"-n", "1", rankprog, "args", "-steps", "100", "-n", "5", "--tag-output"},
			[]string{"arg 0 --tag-output", "arg 0 -n", "arg 0 -steps", "arg 0 100", "arg 0 5", "arg 0 args"}},
		{"double-dash", []string{"-np", "2", "--", rankprog, "args", "-x"},
			[]string{"arg 0 -x", "arg 0 args", "arg 1 -x", "arg 1 args"}},
		{"oversubscribe", []string{"-n", "5", "--oversubscribe", rankprog, "lines", "0"}, nil},
		{"tag-output", []string{"-n", "2", "-l", rankprog, "cwd"}, nil}, // checked below
		{"export", []string{"-n", "2", "-x", "GORUN_TEST_COPY", "-x", "A=1,2", rankprog, "env", "GORUN_TEST_COPY", "A"},
			[]string{"env 0 A=1,2", "env 0 GORUN_TEST_COPY=copied", "env 1 A=1,2", "env 1 GORUN_TEST_COPY=copied"}},
		{"wdir", []string{"-n", "1", "--wdir", wdir, rankprog, "cwd"}, []string{"cwd 0 " + wdir}},
		{"command-on-path", []string{"-n", "2", "echo", "-n", "hi"}, []string{"hi", "hi"}},
		{"output-dir", []string{"-n", "2", "--output-filename", outDir, rankprog, "lines", "1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := gorun(t, "", tt.args...)
			if code != 0 {
				t.Fatalf("gorun %q exited %d; stderr:\n%s", tt.args, code, stderr)
			}
			got := lines(stdout)
			slices.Sort(got)
			switch tt.name {
			case "tag-output":
				for _, l := range got {
					if !strings.HasPrefix(l, "[0] cwd 0 ") && !strings.HasPrefix(l, "[1] cwd 1 ") {
						t.Errorf("line %q lacks its [rank] tag", l)
					}
				}
			case "output-dir":
				for r := range 2 {
					b, err := os.ReadFile(filepath.Join(outDir, fmt.Sprintf("rank.%d.stdout", r)))
					if err != nil || !strings.HasPrefix(string(b), fmt.Sprintf("rank %d line 0 ", r)) {
						t.Errorf("rank.%d.stdout = %q, %v", r, b, err)
					}
				}
			default:
				if !slices.Equal(got, tt.want) {
					t.Errorf("gorun %q printed %q; want %q", tt.args, got, tt.want)
				}
			}
		})
	}
}

func TestStdin(t *testing.T) {
	code, stdout, _ := gorun(t, "a\nb\n", "-n", "3", rankprog, "echo")
	if want := []string{"stdin 0: a", "stdin 0: b"}; code != 0 || !slices.Equal(lines(stdout), want) {
		t.Errorf("exit %d, output %q; want 0, %q", code, stdout, want)
	}
}

func TestTimeout(t *testing.T) {
	code, _, stderr := gorun(t, "", "-n", "2", "--timeout", "0.2", rankprog, "block")
	if want := "gorun: job timed out after 200ms; stopping 2 ranks"; code != 124 || strings.TrimSpace(stderr) != want {
		t.Errorf("exit %d, stderr %q; want 124, %q", code, stderr, want)
	}
}

func TestRankFailure(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := gorun(t, "", "-n", "3", rankprog, "barrier", dir, "exit", "1", "7", "block")
	if code != 7 || !strings.HasPrefix(stderr, "gorun: rank 1 (pid ") ||
		!strings.HasSuffix(stderr, ") exited with status 7; stopping 2 other ranks\n") {
		t.Errorf("exit %d, stderr %q; want 7 and the report of rank 1", code, stderr)
	}
}

// startJob starts the gorun binary with n blocked ranks and returns it once
// every rank runs, with the ranks' pids.
func startJob(t *testing.T, n int, rankArgs ...string) (*exec.Cmd, *bytes.Buffer, []int) {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"-n", strconv.Itoa(n), rankprog, "barrier", dir}, rankArgs...)
	cmd := exec.Command(gorunBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Safety net for a failed test; the process is normally gone.
		_ = cmd.Process.Kill()
	})
	launchertest.WaitFiles(t, dir, "pid.*", n)
	pids := make([]int, n)
	for r := range n {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("pid.%d", r)))
		if err != nil {
			t.Fatal(err)
		}
		if pids[r], err = strconv.Atoi(string(b)); err != nil {
			t.Fatal(err)
		}
	}
	return cmd, &stderr, pids
}

func TestSignals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			t.Parallel()
			cmd, stderr, pids := startJob(t, 3, "ignoreterm", "block")
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			var ee *exec.ExitError
			if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != tt.code {
				t.Errorf("gorun ended with %v; want exit status %d", err, tt.code)
			}
			if want := "gorun: interrupted; stopping 3 ranks\n"; stderr.String() != want {
				t.Errorf("stderr %q; want %q", stderr.String(), want)
			}
			// gorun reaped its ranks before exiting.
			for _, pid := range pids {
				if !launchertest.Gone(pid) {
					t.Errorf("rank process %d still runs", pid)
				}
			}
		})
	}
}

func TestRanksDieWithGorun(t *testing.T) {
	t.Parallel()
	cmd, _, pids := startJob(t, 3, "ignoreterm", "block")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Error expected: gorun was killed.
	_ = cmd.Wait()
	launchertest.WaitGone(t, pids...)
}

func TestSecretCommand(t *testing.T) {
	f := filepath.Join(t.TempDir(), "sub", "secret")
	code, stdout, stderr := gorun(t, "", "secret", "--out", f)
	if code != 0 || !strings.Contains(stdout, "wrote a new secret to "+f) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f)
	if fi.Mode().Perm() != 0o600 || !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(b) {
		t.Errorf("secret file mode %v, content %q; want 0600 and 64 hex digits", fi.Mode().Perm(), b)
	}
	code, _, stderr = gorun(t, "", "secret", "--out", f)
	if code != 2 || !strings.Contains(stderr, "already exists") {
		t.Errorf("second secret: exit %d, %q; want 2 and a refusal", code, stderr)
	}
	if err := os.Chmod(f, 0o640); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = gorun(t, "", "daemon", "--listen", "127.0.0.1:0", "--secret-file", f)
	if want := "gorun: secret file " + f + " is accessible by group or others (mode 0640); run: chmod 600 " + f + "\n"; code != 2 || stderr != want {
		t.Errorf("daemon with a readable secret: exit %d, %q; want 2, %q", code, stderr, want)
	}
}

// TestSlotsBeforeSecret: with --hostfile, a job with more ranks than
// slots is reported as such even when the secret file is missing too.
func TestSlotsBeforeSecret(t *testing.T) {
	hostfile := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hostfile, []byte("node01 slots=1\nnode02:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := gorun(t, "", "--hostfile", hostfile, "-n", "3", "--secret-file", "/no/such/secret", rankprog)
	want := "gorun: 3 ranks requested but the hosts have only 2 slots (node01:1, node02:1): "
	if got := lines(stderr); code != 2 || len(got) != 1 || !strings.HasPrefix(got[0], want) || !strings.Contains(got[0], "--oversubscribe") {
		t.Errorf("exit %d, stderr %q; want 2 and one line starting %q", code, stderr, want)
	}
	if stdout != "" {
		t.Errorf("stdout %q; want nothing", stdout)
	}
	// With enough slots, the missing secret is what is wrong.
	code, _, stderr = gorun(t, "", "--hostfile", hostfile, "-n", "2", "--secret-file", "/no/such/secret", rankprog)
	if code != 2 || !strings.HasPrefix(stderr, "gorun: secret file /no/such/secret does not exist") {
		t.Errorf("exit %d, stderr %q; want 2 and the missing secret file", code, stderr)
	}
}

// TestDaemonMissingSecretFile runs the gorun binary: "gorun daemon" with a
// missing secret file exits with status 2 at once, saying why.
func TestDaemonMissingSecretFile(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	cmd := exec.Command(gorunBin, "daemon", "--listen", addr, "--secret-file", "/nonexistent/secret")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }() // exits when the daemon does (or is killed below)
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("gorun daemon with a missing secret file still runs; stderr:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("gorun daemon ended with %v; want exit status 2", err)
	}
	want := `gorun: secret file /nonexistent/secret does not exist; make one with "gorun secret --out /nonexistent/secret" and copy it to every host (mode 0600)` + "\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("stdout %q, stderr %q; want only %q on stderr", stdout.String(), stderr.String(), want)
	}
}

// TestDaemonCommand runs two real daemons on 127.0.0.1 and 127.0.0.2 and a
// job across them, then kills one daemon mid-job.
func TestDaemonCommand(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if code, _, stderr := gorun(t, "", "secret", "--out", secret); code != 0 {
		t.Fatal(stderr)
	}
	var hosts []string
	var daemons []*exec.Cmd
	for i := 1; i <= 2; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		port := freePort(t, ip)
		d := exec.Command(gorunBin, "daemon", "--listen", fmt.Sprintf("%s:%d", ip, port), "--secret-file", secret)
		var log bytes.Buffer
		d.Stderr = &log
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = d.Process.Signal(syscall.SIGTERM)
			_ = d.Wait()
			if t.Failed() {
				t.Logf("daemon %s:\n%s", ip, log.String())
			}
		})
		waitListening(t, fmt.Sprintf("%s:%d", ip, port))
		hosts = append(hosts, fmt.Sprintf("%s:2@%d", ip, port))
		daemons = append(daemons, d)
	}
	list := strings.Join(hosts, ",")
	code, stdout, stderr := gorun(t, "", "--host", list, "--secret-file", secret, "-l", rankprog, "env", "GORUN_HOST")
	if code != 0 || len(lines(stdout)) != 4 || !strings.Contains(stdout, "[3] env 3 GORUN_HOST=127.0.0.2\n") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	barrier := t.TempDir()
	killed := make(chan time.Time, 1)
	go func() { // kills daemon 2 once all ranks run; exits then (or at the wait limit)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if m, _ := filepath.Glob(filepath.Join(barrier, "pid.*")); len(m) == 4 {
				break
			}
			time.Sleep(10 * time.Millisecond) // polling the file system
		}
		killed <- time.Now()
		_ = daemons[1].Process.Kill()
	}()
	code, _, stderr = gorun(t, "", "--host", list, "--secret-file", secret, rankprog, "barrier", barrier, "block")
	if code != 1 || !strings.Contains(stderr, "gorun: lost the daemon on host 127.0.0.2 (it closed the connection); stopping 2 ranks\n") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	select {
	case at := <-killed:
		d := time.Since(at)
		t.Logf("the job ended %v after the daemon was killed", d.Round(time.Millisecond))
		if d > 5*time.Second {
			t.Errorf("the job ended %v after the daemon was killed; want within 5s", d)
		}
	default:
		t.Errorf("the job ended before the daemon was killed")
	}
	var pids []int
	files, _ := filepath.Glob(filepath.Join(barrier, "pid.*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		p, _ := strconv.Atoi(string(b))
		pids = append(pids, p)
	}
	launchertest.WaitGone(t, pids...)
}

// freePort returns a TCP port free on ip just now.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections at addr.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens at %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling; the daemon has no other signal
	}
}
