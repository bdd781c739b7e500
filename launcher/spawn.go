package launcher

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
)

// procSpec is everything needed to start one rank.
type procSpec struct {
	rank  int
	path  string   // executable
	argv  []string // argv[0] and the program's arguments
	env   []string
	dir   string   // working directory; "" for gorun's
	stdin *os.File // nil for /dev/null; the spawner does not close it
}

// spawner starts ranks on one host. It is the seam for multi-host jobs: a
// later spawner will ask a gorun daemon on another host to start the rank
// and relay its output and exit status. start is called only from the job's
// spawn goroutine (see job.spawnAll).
type spawner interface {
	// host names the host the ranks run on (the value of GORUN_HOST).
	host() string
	// start starts spec's process with its stdout and stderr on pipes.
	start(spec procSpec) (*process, error)
}

// process is a started rank.
type process struct {
	rank int
	pid  int    // on host
	host string // where it runs (its GORUN_HOST)
	cmd  *exec.Cmd
	// remote is set, and cmd nil, for a rank a daemon started; its output
	// arrives through the pipes all the same.
	remote *remoteRank
	// stdout and stderr are the read ends of the rank's output pipes,
	// owned by the job's forwarding goroutines.
	stdout, stderr *os.File
	// drained is closed when both forwarders have finished.
	drained    chan struct{}
	forwarders atomic.Int32 // forwarders still running
}

// forwarderDone records that one of p's two output forwarders finished.
func (p *process) forwarderDone() {
	if p.forwarders.Add(-1) == 0 {
		close(p.drained)
	}
}

// localSpawner starts ranks as children of this process.
type localSpawner struct {
	hostname string
}

func (s localSpawner) host() string { return s.hostname }

func (s localSpawner) start(spec procSpec) (p *process, err error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("launcher: start rank %d: %w", spec.rank, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(outR, outW)
		return nil, fmt.Errorf("launcher: start rank %d: %w", spec.rank, err)
	}
	cmd := &exec.Cmd{
		Path:        spec.path,
		Args:        spec.argv,
		Env:         withRseqOff(spec.env),
		Dir:         spec.dir,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: sysProcAttr(),
	}
	if spec.stdin != nil {
		cmd.Stdin = spec.stdin
	}
	err = cmd.Start()
	// The child holds its own copies of the write ends.
	closeAll(outW, errW)
	if err != nil {
		closeAll(outR, errR)
		switch {
		case errors.Is(err, syscall.ENOEXEC):
			return nil, usageErrorf(err, "cannot start %s: not a program for this system (a script needs a #! line)", spec.path)
		case errors.Is(err, syscall.EACCES):
			return nil, usageErrorf(err, "cannot start %s: permission denied", spec.path)
		case errors.Is(err, syscall.ENOENT):
			if _, serr := os.Stat(spec.path); serr == nil {
				return nil, usageErrorf(err, "cannot start %s: %s", spec.path, missingInterpreter(spec.path))
			}
		}
		return nil, fmt.Errorf("launcher: cannot start rank %d (%s): %w", spec.rank, spec.path, err)
	}
	p = &process{rank: spec.rank, pid: cmd.Process.Pid, host: s.hostname, cmd: cmd, stdout: outR, stderr: errR,
		drained: make(chan struct{})}
	p.forwarders.Store(2)
	return p, nil
}

// missingInterpreter explains why the existing file path could not be
// executed with ENOENT: the interpreter of its #! line, or the loader (ELF
// interpreter) of a dynamically linked executable, does not exist.
func missingInterpreter(path string) string {
	const hint = "the program exists but its %s; %s"
	if f, err := os.Open(path); err == nil {
		line, _ := bufio.NewReader(f).ReadSlice('\n')
		f.Close()
		line = bytes.TrimRight(line, "\r\n")
		if rest, ok := bytes.CutPrefix(line, []byte("#!")); ok {
			interp := string(rest)
			if fs := bytes.Fields(rest); len(fs) > 0 {
				interp = string(fs[0])
			}
			return fmt.Sprintf(hint, fmt.Sprintf("interpreter %s, named by its first line %q, does not exist", interp, line),
				"install it or correct the #! line")
		}
	}
	if f, err := elf.Open(path); err == nil {
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, min(p.Filesz, 4096))
			if _, err := p.ReadAt(b, 0); err == nil {
				if i := bytes.IndexByte(b, 0); i >= 0 {
					b = b[:i]
				}
				return fmt.Sprintf(hint, fmt.Sprintf("loader %s does not exist", b),
					"it was built for another system or C library: rebuild it here, or link it statically")
			}
		}
	}
	return fmt.Sprintf(hint, "interpreter or loader does not exist", "install it, or rebuild the program for this system")
}

// signalGroup sends sig to the process group of p (whose id is p's pid,
// see sysProcAttr), reaching the rank's children too. A group that no
// longer exists is not an error.
func (p *process) signalGroup(sig syscall.Signal) error {
	if p.remote != nil {
		return p.remote.signal(sig)
	}
	err := syscall.Kill(-p.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// exitStatus describes how a rank ended.
type exitStatus struct {
	code      int            // exit status, if !signalled
	signal    syscall.Signal // the signal that killed it, if signalled
	signalled bool
	// lost, if not empty, says why the rank's daemon was lost: its fate
	// is unknown (the daemon kills it, or died with it).
	lost string
}

// failed reports whether the rank counts as failed.
func (s exitStatus) failed() bool { return s.signalled || s.code != 0 || s.lost != "" }

// exitCode is the status gorun exits with for s: the rank's status, or
// 128+signal, or ExitFailure when its daemon was lost.
func (s exitStatus) exitCode() int {
	if s.lost != "" {
		return ExitFailure
	}
	if s.signalled {
		return 128 + int(s.signal)
	}
	return s.code
}

// describe says how the rank ended, e.g. "exited with status 2" or "was
// killed by signal 9 (killed)".
func (s exitStatus) describe() string {
	if s.lost != "" {
		return "was lost with its daemon (" + s.lost + ")"
	}
	if s.signalled {
		return fmt.Sprintf("was killed by signal %d (%s)", int(s.signal), s.signal)
	}
	return fmt.Sprintf("exited with status %d", s.code)
}

// wait waits for p to exit and reports how.
func (p *process) wait() exitStatus {
	if p.remote != nil {
		return <-p.remote.exit
	}
	// Wait's error only restates ProcessState, which is set once a started
	// process has been reaped.
	_ = p.cmd.Wait()
	ps := p.cmd.ProcessState
	if ps == nil {
		return exitStatus{code: 1} // cannot happen for a started process
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitStatus{signalled: true, signal: ws.Signal()}
	}
	return exitStatus{code: ps.ExitCode()}
}

// closeAll closes files whose close errors do not matter (pipe ends).
func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}
