package launcher

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Program is a resolved PROGRAM argument: either an executable or a Go
// package directory to build first. Exactly one of Path and Package is set.
type Program struct {
	// Path is the absolute path of an executable file.
	Path string
	// Package is the absolute path of a directory of Go files (package
	// main) to compile with [Build] before running.
	Package string
}

// Resolve decides what name, the PROGRAM argument of gorun, refers to:
//
//   - "." and ".." are paths, as for "go run": "gorun -n 2 ." builds and
//     runs the Go package in the current directory;
//   - any other name without a slash is looked up on PATH, as a shell does,
//     even if a file of that name exists in the current directory;
//   - a path (relative to the current directory, not to Config.Wdir) names
//     either an executable file or a directory holding .go files, which is
//     a Go package to build. It must be a command (package main): a
//     directory whose files are another package, such as a library, is an
//     error. The package clause is read as go/build reads it for this GOOS
//     and GOARCH; a directory go/build cannot read (say, with two
//     packages) is left to [Build] to report.
//
// Every error wraps [ErrUsage] and says what to do instead; an error from
// the file system is wrapped too.
func Resolve(name string) (Program, error) {
	if name == "" {
		return Program{}, usageErrorf(nil, "no program given; usage: gorun [flags] PROGRAM [ARGS...]")
	}
	if !strings.Contains(name, "/") && name != "." && name != ".." {
		p, err := exec.LookPath(name)
		if errors.Is(err, exec.ErrDot) {
			err = nil // PATH explicitly contains "." or ""; honour it like a shell
		}
		if err != nil {
			if _, serr := os.Stat(name); serr == nil {
				return Program{}, usageErrorf(err, "program %q not found on PATH; to run %q in the current directory, write ./%s", name, name, name)
			}
			return Program{}, usageErrorf(err, "program %q not found on PATH; give a path (./%s), a command on PATH or a Go package directory", name, name)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return Program{}, usageErrorf(err, "program %q: %v", name, err)
		}
		return Program{Path: abs}, nil
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return Program{}, usageErrorf(err, "program %q: %v", name, err)
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return Program{}, usageErrorf(err, "program %q does not exist", name)
	}
	if err != nil {
		return Program{}, usageErrorf(err, "program %q: %v", name, err)
	}
	if fi.IsDir() {
		ok, err := hasGoFiles(abs)
		if err != nil {
			return Program{}, usageErrorf(err, "program %q: %v", name, err)
		}
		if !ok {
			return Program{}, usageErrorf(nil, "program %q is a directory without .go files; give an executable or a Go package directory", name)
		}
		if pkg, err := build.ImportDir(abs, 0); err == nil && pkg.Name != "main" {
			return Program{}, notMainError(name, pkg.Name)
		}
		return Program{Package: abs}, nil
	}
	if !fi.Mode().IsRegular() {
		return Program{}, usageErrorf(nil, "program %q is not a regular file", name)
	}
	if err := unix.Access(abs, unix.X_OK); err != nil {
		if strings.HasSuffix(abs, ".go") {
			return Program{}, usageErrorf(err, "program %q is a Go source file; give its package directory (%s) to build and run it", name, filepath.Dir(name))
		}
		return Program{}, usageErrorf(err, "program %q is not executable (chmod +x %s)", name, name)
	}
	return Program{Path: abs}, nil
}

// notMainError is the error for a PROGRAM directory of the Go package
// pkgName (empty if not known), which is not package main.
func notMainError(name, pkgName string) error {
	what := "a library package"
	if pkgName != "" {
		what = "package " + pkgName
	}
	return usageErrorf(nil, "program %q is %s, not a main package: gorun runs commands (package main, with a func main), as go run does", name, what)
}

// hasGoFiles reports whether dir directly contains a .go file.
func hasGoFiles(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") {
			return true, nil
		}
	}
	return false, nil
}

// Build compiles the Go package in dir with "go build" (the go command on
// PATH, running in dir so that dir's module applies) into a new temporary
// directory, as "go run" does; the build cache makes repeated builds fast.
// The compiler's output goes to stderr as it is produced. Build returns the
// path of the executable and a cleanup function that removes the temporary
// directory; the caller must call it once the program is no longer needed.
// On failure nothing is left behind and the error says that the compiler's
// messages were written to stderr; if the package compiles but is not
// package main, so that go build makes no executable, the error wraps
// [ErrUsage] and says so. Cancelling ctx kills the build.
func Build(ctx context.Context, dir string, stderr io.Writer) (path string, cleanup func(), err error) {
	if stderr == nil {
		stderr = io.Discard
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, fmt.Errorf("launcher: build %s: %w", dir, err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", nil, fmt.Errorf("launcher: building Go package %s needs the go command on PATH: %w", dir, err)
	}
	tmp, err := os.MkdirTemp("", "gorun-build-")
	if err != nil {
		return "", nil, fmt.Errorf("launcher: build %s: %w", dir, err)
	}
	out := filepath.Join(tmp, filepath.Base(abs))
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, ".")
	cmd.Dir = abs
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		// Best effort: the directory is ours and empty or holds a partial binary.
		_ = os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("launcher: cannot build Go package %s (go build's messages are above): %w", dir, err)
	}
	// For a package other than main, go build -o writes an archive, not an
	// executable. (Resolve normally catches this earlier.)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm()&0o111 == 0 {
		_ = os.RemoveAll(tmp) // best effort, as above
		return "", nil, notMainError(dir, "")
	}
	return out, func() {
		// Best effort: a leftover temporary directory harms nothing.
		_ = os.RemoveAll(tmp)
	}, nil
}
