package launcher_test

// Multi-host jobs against daemons on loopback addresses: 127.0.0.1,
// 127.0.0.2, ... stand for distinct hosts (each rank's GORUN_HOST is the
// address), although they share this machine's file system.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/launcher"
	"github.com/gorun-hpc/gorun/launcher/launchertest"
	"github.com/gorun-hpc/gorun/runtime/auth"
)

// loopDaemon is a daemon serving on one loopback address.
type loopDaemon struct {
	host   launcher.Host
	cancel context.CancelFunc
	done   chan error
}

// startDaemons starts n daemons on 127.0.0.1..127.0.0.n, each with slots
// slots, sharing secret; they stop when the test ends.
func startDaemons(t *testing.T, n, slots int, secret []byte) []*loopDaemon {
	t.Helper()
	var ds []*loopDaemon
	for i := range n {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i+1))
		if err != nil {
			t.Fatal(err)
		}
		ip := fmt.Sprintf("127.0.0.%d", i+1)
		port := ln.Addr().(*net.TCPAddr).Port
		ctx, cancel := context.WithCancel(context.Background())
		d := &loopDaemon{host: launcher.Host{Name: ip, Port: port, Slots: slots}, cancel: cancel, done: make(chan error, 1)}
		srv := &launcher.Daemon{Secret: secret, CacheDir: t.TempDir(),
			Logger: slog.New(slog.NewTextHandler(&testLog{t: t, prefix: ip}, &slog.HandlerOptions{Level: slog.LevelInfo}))}
		go func() { d.done <- srv.Serve(ctx, ln) }() // exits when cancelled (by the test or its cleanup)
		t.Cleanup(func() {
			cancel()
			if err := <-d.done; err != nil {
				t.Errorf("daemon %s: %v", ip, err)
			}
		})
		ds = append(ds, d)
	}
	return ds
}

// testLog sends a daemon's log lines to t.Log until the test ends.
type testLog struct {
	t      *testing.T
	prefix string
}

func (l *testLog) Write(p []byte) (int, error) {
	if testing.Verbose() {
		l.t.Logf("daemon %s: %s", l.prefix, strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func hostsOf(ds []*loopDaemon) []launcher.Host {
	var hs []launcher.Host
	for _, d := range ds {
		hs = append(hs, d.host)
	}
	return hs
}

func newSecret(t *testing.T) []byte {
	t.Helper()
	k, err := auth.NewKey(32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// barrierPids returns the pids the ranks wrote with rankprog's barrier.
func barrierPids(t *testing.T, dir string) []int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "pid.*"))
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func TestRemoteJob(t *testing.T) {
	secret := newSecret(t)
	ds := startDaemons(t, 3, 2, secret)
	r := run(t, launcher.Config{
		N: 6, Hosts: hostsOf(ds), Secret: secret, TagOutput: true,
		Env:  []string{"GORUN_TEST_X=42"},
		Args: []string{"env", "GORUN_HOST", "GORUN_LOCAL_RANK", "GORUN_LOCAL_SIZE", "GORUN_TEST_X", "lines", "50", "errlines", "3"},
	})
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	out := lines(r.stdout)
	for rank := range 6 {
		host := fmt.Sprintf("127.0.0.%d", rank/2+1)
		for _, want := range []string{
			fmt.Sprintf("[%d] env %d GORUN_HOST=%s", rank, rank, host),
			fmt.Sprintf("[%d] env %d GORUN_LOCAL_RANK=%d", rank, rank, rank%2),
			fmt.Sprintf("[%d] env %d GORUN_LOCAL_SIZE=2", rank, rank),
			fmt.Sprintf("[%d] env %d GORUN_TEST_X=42", rank, rank),
		} {
			if !slices.Contains(out, want) {
				t.Errorf("missing %q in stdout", want)
			}
		}
		for i := range 50 {
			want := fmt.Sprintf("[%d] rank %d line %d %s", rank, rank, i, strings.Repeat(strconv.Itoa(rank), 40+i%50))
			if !slices.Contains(out, want) {
				t.Fatalf("missing or broken line %q in stdout:\n%s", want, r.stdout)
			}
		}
	}
	if n := len(lines(r.stderr)); n != 18 {
		t.Errorf("%d lines on stderr, want 18:\n%s", n, r.stderr)
	}
}

func TestRemoteMapByNode(t *testing.T) {
	secret := newSecret(t)
	ds := startDaemons(t, 2, 2, secret)
	r := run(t, launcher.Config{N: 3, Hosts: hostsOf(ds), Secret: secret, MapByNode: true,
		Args: []string{"env", "GORUN_HOST"}})
	for rank, host := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.1"} {
		if want := fmt.Sprintf("env %d GORUN_HOST=%s", rank, host); !strings.Contains(r.stdout, want) {
			t.Errorf("missing %q in:\n%s", want, r.stdout)
		}
	}
}

func TestRemoteRankFails(t *testing.T) {
	secret := newSecret(t)
	ds := startDaemons(t, 3, 2, secret)
	dir := t.TempDir()
	start := time.Now()
	r := run(t, launcher.Config{N: 6, Hosts: hostsOf(ds), Secret: secret,
		Args: []string{"barrier", dir, "exit", "3", "2", "block"}})
	if r.code != 2 {
		t.Errorf("exit %d, want 2", r.code)
	}
	want := regexp.MustCompile(`^gorun: rank 3 \(pid \d+ on host 127\.0\.0\.2\) exited with status 2; stopping 5 other ranks$`)
	if got := gorunLines(r.stderr); len(got) != 1 || !want.MatchString(got[0]) {
		t.Errorf("launcher said %q; want one line matching %s", got, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the job took %v", d)
	}
	launchertest.WaitGone(t, barrierPids(t, dir)...)
}

func TestRemoteAbortAndTimeout(t *testing.T) {
	secret := newSecret(t)
	ds := startDaemons(t, 2, 2, secret)
	r := run(t, launcher.Config{N: 4, Hosts: hostsOf(ds), Secret: secret,
		Args: []string{"connect", "abort", "2", "7", "boom", "block"}})
	if r.code != 7 || !strings.Contains(r.stderr, "gorun: rank 2 called Abort(code 7): boom") {
		t.Errorf("abort: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = run(t, launcher.Config{N: 4, Hosts: hostsOf(ds), Secret: secret, Timeout: 500 * time.Millisecond,
		Args: []string{"ignoreterm", "block"}})
	if r.code != launcher.ExitTimeout || !strings.Contains(r.stderr, "gorun: job timed out after 500ms; stopping 4 ranks") {
		t.Errorf("timeout: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestRemoteTwoJobsAtOnce runs two jobs at the same time on one daemon,
// each in its own working directory. Each rank waits until ranks of both
// jobs have started, so neither job can finish unless the daemon serves
// both at once.
func TestRemoteTwoJobsAtOnce(t *testing.T) {
	secret := newSecret(t)
	ds := startDaemons(t, 1, 2, secret)
	gate := t.TempDir()
	script := filepath.Join(t.TempDir(), "both.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
: > "$GATE/$ROLE.$GORUN_RANK"
until [ -e "$GATE/a.1" ] && [ -e "$GATE/b.1" ]; do sleep 0.01; done
echo "job $ROLE rank $GORUN_RANK in $(pwd -P)"
`), 0o755); err != nil {
		t.Fatal(err)
	}
	roles := []string{"a", "b"}
	dirs := make([]string, len(roles))
	results := make([]result, len(roles))
	errs := make([]error, len(roles))
	var wg sync.WaitGroup
	for i, role := range roles {
		dir, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		dirs[i] = dir
		wg.Add(1)
		go func() { // runs one job; joined below (its Timeout bounds it)
			defer wg.Done()
			results[i], errs[i] = tryRun(t.Context(), launcher.Config{N: 2, Hosts: hostsOf(ds), Secret: secret,
				Program: script, Wdir: dir, Env: []string{"GATE=" + gate, "ROLE=" + role}, Timeout: 30 * time.Second})
		}()
	}
	wg.Wait()
	for i, role := range roles {
		r := results[i]
		if errs[i] != nil || r.code != 0 {
			t.Errorf("job %s: exit %d, %v; stderr:\n%s", role, r.code, errs[i], r.stderr)
			continue
		}
		want := []string{fmt.Sprintf("job %s rank 0 in %s", role, dirs[i]), fmt.Sprintf("job %s rank 1 in %s", role, dirs[i])}
		got := lines(r.stdout)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("job %s printed %q; want %q", role, got, want)
		}
	}
}

// TestRemoteSlotsBeforeSecret: more ranks than slots is reported as such
// even when the secret is missing too.
func TestRemoteSlotsBeforeSecret(t *testing.T) {
	r, err := tryRun(t.Context(), launcher.Config{N: 3, Hosts: []launcher.Host{{Name: "node01", Slots: 2}}, Program: rankprog})
	if !errors.Is(err, launcher.ErrNotEnoughSlots) || r.code != launcher.ExitUsage ||
		!strings.Contains(err.Error(), "3 ranks requested but the hosts have only 2 slots") {
		t.Errorf("code %d, err %v; want the slots error", r.code, err)
	}
}

func TestRemoteLostDaemon(t *testing.T) {
	secret := newSecret(t)
	ds := startDaemons(t, 3, 2, secret)
	dir := t.TempDir()
	stopped := make(chan time.Time, 1)
	go func() { // stops daemon 2 once every rank runs; exits then (or at the wait limit)
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if m, _ := filepath.Glob(filepath.Join(dir, "pid.*")); len(m) == 6 {
				break
			}
			time.Sleep(10 * time.Millisecond) // polling the file system
		}
		stopped <- time.Now()
		ds[1].cancel()
	}()
	r := run(t, launcher.Config{N: 6, Hosts: hostsOf(ds), Secret: secret,
		Args: []string{"barrier", dir, "block"}})
	var elapsed time.Duration
	select {
	case at := <-stopped:
		elapsed = time.Since(at)
	default:
		t.Fatalf("the job ended before the daemon was stopped: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if r.code == 0 {
		t.Errorf("exit 0 after losing a daemon")
	}
	want := regexp.MustCompile(`^gorun: lost the daemon on host 127\.0\.0\.2 \(.+\); stopping 4 ranks$`)
	if got := gorunLines(r.stderr); len(got) != 1 || !want.MatchString(got[0]) {
		t.Errorf("launcher said %q; want one line matching %s", got, want)
	}
	t.Logf("the job ended %v after the daemon stopped", elapsed.Round(time.Millisecond))
	if elapsed > 5*time.Second {
		t.Errorf("the job ended %v after the daemon stopped; want within 5s", elapsed)
	}
	launchertest.WaitGone(t, barrierPids(t, dir)...)
}

func TestRemoteWrongSecret(t *testing.T) {
	ds := startDaemons(t, 2, 1, newSecret(t))
	r, err := tryRun(t.Context(), launcher.Config{N: 2, Hosts: hostsOf(ds), Secret: newSecret(t), Program: rankprog})
	if !errors.Is(err, launcher.ErrUsage) || r.code != launcher.ExitUsage ||
		!strings.Contains(err.Error(), "rejected our secret") || !strings.Contains(err.Error(), "host 127.0.0.1") {
		t.Errorf("code %d, err %v; want a usage error about the secret naming the host", r.code, err)
	}
}

func TestRemoteUnreachableAndMissingDir(t *testing.T) {
	secret := newSecret(t)
	ds := startDaemons(t, 1, 2, secret)
	ln, err := net.Listen("tcp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := launcher.Host{Name: "127.0.0.9", Port: ln.Addr().(*net.TCPAddr).Port, Slots: 1}
	ln.Close()
	_, err = tryRun(t.Context(), launcher.Config{N: 3, Hosts: append(hostsOf(ds), dead), Secret: secret, Program: rankprog})
	if err == nil || !strings.Contains(err.Error(), "cannot reach the daemon of host 127.0.0.9") {
		t.Errorf("unreachable daemon: %v", err)
	}
	r, err := tryRun(t.Context(), launcher.Config{N: 2, Hosts: hostsOf(ds), Secret: secret, Program: rankprog,
		Wdir: "/no/such/dir"})
	if !errors.Is(err, launcher.ErrUsage) || r.code != launcher.ExitUsage ||
		!strings.Contains(err.Error(), "host 127.0.0.1: working directory /no/such/dir does not exist") {
		t.Errorf("missing directory: code %d, %v", r.code, err)
	}
}

func TestRemoteStage(t *testing.T) {
	secret := newSecret(t)
	ds := startDaemons(t, 2, 1, secret)
	for range 2 { // the second run finds the program cached
		r := run(t, launcher.Config{N: 2, Hosts: hostsOf(ds), Secret: secret, Stage: true,
			Args: []string{"args", "x y"}})
		for rank := range 2 {
			if want := fmt.Sprintf("arg %d x y\n", rank); !strings.Contains(r.stdout, want) {
				t.Errorf("missing %q in:\n%s", want, r.stdout)
			}
		}
	}
}

func TestRemoteInterrupt(t *testing.T) {
	secret := newSecret(t)
	ds := startDaemons(t, 2, 2, secret)
	dir := t.TempDir()
	ctx, cancel := context.WithCancelCause(t.Context())
	go func() { // interrupts the job once every rank runs; exits then
		launchertest.WaitFiles(t, dir, "pid.*", 4)
		time.Sleep(50 * time.Millisecond) // let the launcher read the daemons' start reports
		cancel(launcher.Interrupt{Signal: 2})
	}()
	r, err := tryRun(ctx, launcher.Config{N: 4, Hosts: hostsOf(ds), Secret: secret, Program: rankprog,
		Args: []string{"barrier", dir, "block"}})
	if err != nil || r.code != 130 || !strings.Contains(r.stderr, "gorun: interrupted; stopping 4 ranks") {
		t.Errorf("code %d, err %v, stderr:\n%s", r.code, err, r.stderr)
	}
	launchertest.WaitGone(t, barrierPids(t, dir)...)
}
