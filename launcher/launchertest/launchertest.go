// Package launchertest holds helpers for tests that start real gorun jobs:
// building the helper programs and checking that processes are gone.
package launchertest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Rankprog is the import path of the launcher's test helper program, a
// stand-in for a gorun program whose behaviour its arguments choose (see
// its package documentation).
const Rankprog = "github.com/gorun-hpc/gorun/launcher/testdata/rankprog"

// waitLimit bounds every wait of this package: far beyond any expected
// delay, it only turns a hang into a test failure.
const waitLimit = 30 * time.Second

// Build compiles the main package pkg (an import path or a directory,
// resolved from the current directory, which must be inside the gorun
// module) into dir and returns the executable's path. A build failure's
// error includes the compiler's output.
func Build(dir, pkg string) (string, error) {
	name := path.Base(pkg)
	if abs, err := filepath.Abs(pkg); err == nil && (pkg == "." || strings.HasPrefix(pkg, "./") || filepath.IsAbs(pkg)) {
		name = filepath.Base(abs) // a directory, not an import path
	}
	out := filepath.Join(dir, name)
	var msgs bytes.Buffer
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = &msgs, &msgs
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("launchertest: go build %s: %w\n%s", pkg, err, msgs.Bytes())
	}
	return out, nil
}

// Gone reports whether process pid no longer runs: it does not exist or is
// a zombie (killed, waiting to be reaped by a parent that may not reap it,
// such as a container's init).
func Gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name in parentheses, which may itself
	// contain parentheses: search from the last one.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// WaitGone waits until every process of pids is [Gone] and fails the test
// if one still runs after a generous limit.
func WaitGone(t testing.TB, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for _, pid := range pids {
		for !Gone(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs after %v", pid, waitLimit)
			}
			time.Sleep(5 * time.Millisecond) // polling the kernel; there is no event to wait for
		}
	}
}

// WaitFiles waits until at least n files in dir match pattern (as in
// filepath.Match) and fails the test if they do not appear within a
// generous limit.
func WaitFiles(t testing.TB, dir, pattern string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		if len(m) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d files %s in %s after %v; want %d", len(m), pattern, dir, waitLimit, n)
		}
		time.Sleep(5 * time.Millisecond) // polling the file system; there is no event to wait for
	}
}
