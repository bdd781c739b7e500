package launcher

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
	"github.com/gorun-hpc/gorun/runtime/auth"
)

// Exit statuses of Run besides those taken from the ranks (see the package
// documentation for the whole policy).
const (
	// ExitFailure: the launcher could not run the job (build failure,
	// a rank could not be started, no rendezvous server).
	ExitFailure = 1
	// ExitUsage: the configuration or PROGRAM is wrong ([ErrUsage]).
	ExitUsage = 2
	// ExitTimeout: Config.Timeout expired.
	ExitTimeout = 124
	// ExitInterrupted: the context was cancelled without an [Interrupt]
	// cause (128+SIGINT).
	ExitInterrupted = 128 + int(syscall.SIGINT)
)

const (
	// termGrace is how long ranks have between SIGTERM and SIGKILL.
	termGrace = time.Second
	// drainGrace bounds how long output is still read once every rank has
	// been reaped and its process group killed; only a descendant that
	// escaped the group can keep a pipe open that long.
	drainGrace = time.Second
	// lastWordsWait bounds how long the report of a failed rank waits for
	// the rank's remaining output (a panic's stack trace), so that the
	// report comes after it.
	lastWordsWait = 250 * time.Millisecond
	// blameWait bounds how long a failed rank that reported losing a peer
	// waits for that peer's exit, which names the real cause of the job's
	// end: a rank that dies makes its peers fail within microseconds, and
	// the launcher may reap them first.
	blameWait = 300 * time.Millisecond
	// tokenSize is the length of the job token in bytes.
	tokenSize = 32
)

// Config describes a job for [Run]. The zero value of every field but N and
// Program is usable.
type Config struct {
	// N is the number of ranks, at least 1. Any N works on one host,
	// including more ranks than CPUs.
	N int
	// Program is gorun's PROGRAM argument: an executable path, a command
	// on PATH or a Go package directory (see [Resolve]).
	Program string
	// Args are the program's arguments, passed untouched.
	Args []string
	// Env holds -x entries: "NAME=VALUE" sets NAME for every rank; a bare
	// "NAME" copies NAME's value from BaseEnv (and is ignored when BaseEnv
	// does not set it). The GORUN_* variables the launcher sets cannot be
	// overridden.
	Env []string
	// BaseEnv is the environment every rank starts from; nil means
	// os.Environ().
	BaseEnv []string
	// Wdir is the ranks' working directory; "" means the current one.
	// Program is resolved before, relative to the current directory.
	Wdir string
	// TagOutput prefixes every line a rank writes with "[rank] ".
	TagOutput bool
	// OutputDir, if set, sends each rank's output to the files
	// OutputDir/rank.R.stdout and OutputDir/rank.R.stderr (created or
	// truncated; the directory is created if missing) instead of Stdout
	// and Stderr.
	OutputDir string
	// Timeout, if positive, ends the job (status 124) when it runs longer,
	// counted from the start of the first rank.
	Timeout time.Duration
	// Stdin is forwarded to rank 0; the other ranks read /dev/null, and
	// nil gives rank 0 /dev/null too. When Stdin ends, rank 0's standard
	// input is closed. If Stdin is an *os.File, Run stops reading it when
	// the job ends; any other reader must return from Read (with data,
	// io.EOF or an error) for Run to return, because Run waits for the
	// goroutine reading it.
	Stdin io.Reader
	// Stdout and Stderr receive the ranks' output (see the package
	// documentation); Stderr also gets the launcher's one-line report of
	// how a failed job ended and go build's messages. Nil discards.
	// Writes are serialized per destination, one whole line at a time.
	Stdout, Stderr io.Writer
	// Logger receives diagnostics of the launcher and its rendezvous
	// server; nil discards them.
	Logger *slog.Logger

	// Hosts, if not empty, runs the job on these hosts instead of this one
	// (see the package documentation, "Several machines"): each host's
	// ranks are started by the gorun daemon at [Host.Addr], which must
	// prove Secret, as the launcher must. [Map] places the ranks.
	Hosts []Host
	// MapByNode deals ranks round-robin over Hosts instead of filling each
	// host's slots in turn (gorun --map-by node).
	MapByNode bool
	// Oversubscribe allows more ranks than the slots of Hosts.
	Oversubscribe bool
	// Secret is the secret shared with the daemons (see [ReadSecret]);
	// required with Hosts.
	Secret []byte
	// Net, a network such as 10.0.0.0/24, is where the ranks of a
	// multi-host job reach each other and the launcher: the launcher
	// listens on its address in Net and each rank on its own (GORUN_NET).
	// Empty means the address of the launcher's interface that routes to
	// the first daemon, and for each rank that of its interface that
	// routes to the launcher.
	Net string
	// Stage ships the executable to the daemons, which cache it by its
	// SHA-256, instead of running the same path on every host. A Go
	// package PROGRAM is always staged in a multi-host job.
	Stage bool
}

// Run runs the job described by cfg on this host and returns the status
// the gorun command should exit with (see the package documentation). It
// returns only after every rank has been reaped and the forwarding of
// their output has finished; it then removes the job's shared-memory files
// (/dev/shm/gorun-<job>-*) and the temporary build directory.
//
// A non-nil error means that the job could not run as asked (the code is
// then [ExitUsage] for errors wrapping [ErrUsage], otherwise
// [ExitFailure]); how a job that ran ended is reported by the code alone,
// with one line on cfg.Stderr. Cancelling ctx stops the job as described
// for [Interrupt].
func Run(ctx context.Context, cfg Config) (code int, err error) {
	if cfg.N < 1 {
		return ExitUsage, usageErrorf(nil, "the number of ranks (-n) must be at least 1, got %d", cfg.N)
	}
	prog, err := Resolve(cfg.Program)
	if err != nil {
		return ExitUsage, err
	}
	if cfg.Wdir != "" && len(cfg.Hosts) == 0 { // with Hosts, each daemon checks it
		fi, err := os.Stat(cfg.Wdir)
		if err != nil {
			return ExitUsage, usageErrorf(err, "working directory %q: %v", cfg.Wdir, err)
		}
		if !fi.IsDir() {
			return ExitUsage, usageErrorf(nil, "working directory %q is not a directory", cfg.Wdir)
		}
	}
	base := cfg.BaseEnv
	if base == nil {
		base = os.Environ()
	}
	env, err := jobEnv(base, cfg.Env)
	if err != nil {
		return ExitUsage, err
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	j := &job{
		cfg:  cfg,
		env:  env,
		sp:   localSpawner{hostname: host},
		out:  &lineSink{w: orDiscard(cfg.Stdout)},
		errs: &lineSink{w: orDiscard(cfg.Stderr)},
		log:  cfg.Logger,
	}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	j.path = prog.Path
	j.argv = append([]string{cfg.Program}, cfg.Args...)
	if len(cfg.Hosts) > 0 {
		if j.multi, err = newMultiHost(cfg, base); err != nil {
			return ExitUsage, err
		}
		j.multi.stage = cfg.Stage || prog.Package != "" // a built program exists only here
	}
	if prog.Package != "" {
		bin, cleanup, err := Build(ctx, prog.Package, orDiscard(cfg.Stderr))
		if err != nil {
			if ctx.Err() != nil {
				j.report("gorun: interrupted while building %s", cfg.Program)
				return interruptCode(ctx), nil
			}
			if errors.Is(err, ErrUsage) {
				return ExitUsage, err
			}
			return ExitFailure, err
		}
		defer cleanup()
		j.path = bin
		j.argv[0] = bin
	}
	return j.run(ctx)
}

// orDiscard returns w, or io.Discard if w is nil.
func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// interruptCode is the exit status for a job ended by ctx's cancellation.
func interruptCode(ctx context.Context) int {
	var in Interrupt
	if errors.As(context.Cause(ctx), &in) && in.Signal > 0 {
		return 128 + int(in.Signal)
	}
	return ExitInterrupted
}

// job is one run of Run after the program has been resolved.
type job struct {
	cfg  Config
	path string   // the executable
	argv []string // argv[0] and the program's arguments
	env  []string // shared part of every rank's environment
	sp   spawner
	// multi is set for a job whose ranks run on daemons (Config.Hosts).
	multi *multiHost
	log   *slog.Logger
	id    string // GORUN_JOB

	out, errs *lineSink // gorun's stdout and stderr

	exits  chan rankExit // every reaped rank; capacity N, so waiters never block
	aborts chan abortReq // Abort requests; capacity N, extra requests are dropped

	// What ranks told the rendezvous server, written by its callbacks.
	rmu       sync.Mutex
	connected []bool // the rank called mpi.Init (proved the job token)
	finalized []bool // the rank reported Finalize
	lostPeer  []int  // the first peer the rank reported lost, or -1

	stdin *stdinForwarder // nil when rank 0 reads /dev/null

	// release, once closed, lets the spawn goroutine unlock its thread and
	// exit; it is closed after every rank has been reaped.
	release chan struct{}
	// wg joins every goroutine of the job: the spawn goroutine, one waiter
	// and two output forwarders per rank, the stdin forwarder, and the
	// reader and pinger of each daemon connection.
	wg sync.WaitGroup
}

// rankExit reports that a rank has been reaped.
type rankExit struct {
	p      *process
	status exitStatus
}

// abortReq is a rank's call of Abort, relayed by the rendezvous server.
type abortReq struct {
	rank, code int
	msg        string
}

// onAbort is the rendezvous server's OnAbort callback. It runs on a
// server goroutine and never blocks.
func (j *job) onAbort(rank, code int, msg string) {
	select {
	case j.aborts <- abortReq{rank: rank, code: code, msg: msg}:
	default: // the job is already ending; N requests are more than enough
	}
}

// setRank applies f to the rank states under their lock.
func (j *job) setRank(f func()) {
	j.rmu.Lock()
	defer j.rmu.Unlock()
	f()
}

// rankState returns what rank r told the rendezvous server.
func (j *job) rankState(r int) (connected, finalized bool, lostPeer int) {
	j.rmu.Lock()
	defer j.rmu.Unlock()
	return j.connected[r], j.finalized[r], j.lostPeer[r]
}

// report writes one launcher line to gorun's stderr.
func (j *job) report(format string, args ...any) {
	j.errs.writeLine([]byte(fmt.Sprintf(format, args...) + "\n"))
}

func (j *job) run(ctx context.Context) (int, error) {
	n := j.cfg.N
	token, err := auth.NewKey(tokenSize)
	if err != nil {
		return ExitFailure, fmt.Errorf("launcher: job token: %w", err)
	}
	id, err := auth.NewKey(4)
	if err != nil {
		return ExitFailure, fmt.Errorf("launcher: job id: %w", err)
	}
	j.id = hex.EncodeToString(id)
	defer j.removeShm()

	outSinks, errSinks, closeFiles, err := j.sinks()
	if err != nil {
		return ExitUsage, err
	}
	defer closeFiles()

	j.exits = make(chan rankExit, n)
	j.aborts = make(chan abortReq, n)
	j.connected, j.finalized, j.lostPeer = make([]bool, n), make([]bool, n), make([]int, n)
	for r := range j.lostPeer {
		j.lostPeer[r] = -1
	}
	listen := "127.0.0.1:0"
	if j.multi != nil {
		// Joined after the supervision loop, or here on an early return.
		defer j.wg.Wait()
		defer j.multi.closeAll()
		if err := j.connectHosts(ctx); err != nil {
			if ctx.Err() != nil {
				j.report("gorun: interrupted while connecting to the daemons")
				return interruptCode(ctx), nil
			}
			if errors.Is(err, ErrUsage) {
				return ExitUsage, err
			}
			return ExitFailure, err
		}
		if listen, err = j.multi.rendezvousAddr(); err != nil {
			return ExitUsage, err
		}
	}
	srv, err := rendezvous.Listen(ctx, listen, rendezvous.ServerConfig{
		Size:       n,
		Token:      token,
		OnAbort:    j.onAbort,
		OnConnect:  func(r int) { j.setRank(func() { j.connected[r] = true }) },
		OnFinalize: func(r int) { j.setRank(func() { j.finalized[r] = true }) },
		OnPeerLost: func(r, peer int) {
			j.setRank(func() {
				if j.lostPeer[r] < 0 {
					j.lostPeer[r] = peer
				}
			})
		},
		Logger: j.log,
	})
	if err != nil {
		return ExitFailure, fmt.Errorf("launcher: start the rendezvous server: %w", err)
	}
	defer func() {
		// Close always returns nil.
		_ = srv.Close()
	}()

	var timeoutC <-chan time.Time
	if j.cfg.Timeout > 0 {
		t := time.NewTimer(j.cfg.Timeout)
		defer t.Stop()
		timeoutC = t.C
	}

	ident := rankEnv{
		size: n, localSize: n,
		host: j.sp.host(), job: j.id, addr: srv.Addr(),
		token: hex.EncodeToString(token),
	}
	procs, spawnErr := j.spawnAll(ctx, ident, outSinks, errSinks)
	j.log.Debug("launcher: ranks started", "job", j.id, "started", len(procs), "of", n, "err", spawnErr)

	// The supervision loop: runs until every started rank has been reaped.
	e := ending{j: j, srv: srv, procs: procs, alive: make([]bool, n)}
	for _, p := range procs {
		e.alive[p.rank] = true
	}
	e.remaining = len(procs)
	var killC, blameC, termC <-chan time.Time
	var killTimer, blameTimer, termTimer *time.Timer
	stopping := func() {
		// Stop every rank: SIGTERM now, SIGKILL after termGrace.
		e.signalAll(syscall.SIGTERM)
		killTimer = time.NewTimer(termGrace)
		killC = killTimer.C
	}
	switch {
	case spawnErr != nil:
		e.ended = true
		e.signalAll(syscall.SIGKILL)
	case ctx.Err() != nil:
		e.interrupted(ctx)
		stopping()
	}
	ctxDone := ctx.Done()
	for e.remaining > 0 {
		select {
		case ex := <-j.exits:
			e.remaining--
			e.alive[ex.p.rank] = false
			if e.ended {
				continue
			}
			// A rank's Abort request reaches the channel before Abort
			// returns in the rank, so before the rank can exit: prefer it
			// as the cause.
			select {
			case a := <-j.aborts:
				e.abort(a)
				stopping()
				continue
			default:
			}
			connected, finalized, lost := j.rankState(ex.p.rank)
			switch {
			case ex.status.lost != "":
				// A lost daemon is the cause, whatever else failed. The
				// other ranks hear of it first (their blocked calls fail)
				// and have lastWordsWait to report that before they are
				// stopped.
				e.hostLost(ex)
				termTimer = time.NewTimer(lastWordsWait)
				termC = termTimer.C
			case !ex.status.failed() && (!connected || finalized):
				// A clean exit; a rank waiting to blame this one blames itself.
				if e.pending != nil && e.pendingPeer == ex.p.rank {
					stopping()
					e.rankFailed(*e.pending)
				}
			case !ex.status.failed():
				stopping()
				e.rankFailed(ex) // exited 0 after Init without Finalize
			case e.pending != nil && e.pendingPeer != ex.p.rank:
				// Another casualty while waiting for the peer that died.
			case e.pending == nil && lost >= 0 && lost != ex.p.rank && e.alive[lost]:
				// This rank failed after losing a peer that is still
				// being reaped: that peer is the likely cause; wait for it.
				e.pending, e.pendingPeer = &ex, lost
				blameTimer = time.NewTimer(blameWait)
				blameC = blameTimer.C
			default:
				stopping() // first: the report may wait for the rank's last output
				e.rankFailed(ex)
			}
		case <-blameC:
			blameC = nil
			if !e.ended && e.pending != nil {
				stopping()
				e.rankFailed(*e.pending)
			}
		case a := <-j.aborts:
			if !e.ended {
				e.abort(a)
				stopping()
			}
		case <-ctxDone:
			ctxDone = nil
			if !e.ended {
				e.interrupted(ctx)
				stopping()
			}
		case <-timeoutC:
			timeoutC = nil
			if !e.ended {
				e.timedOut()
				stopping()
			}
		case <-termC:
			termC = nil
			stopping()
		case <-killC:
			killC = nil
			e.signalAll(syscall.SIGKILL)
		}
	}
	if termTimer != nil {
		termTimer.Stop()
	}
	if killTimer != nil {
		killTimer.Stop()
	}
	if blameTimer != nil {
		blameTimer.Stop()
	}
	// Every rank has been reaped; kill what is left in their process
	// groups (a shell script's background commands) and finish.
	e.signalAll(syscall.SIGKILL)
	if j.multi != nil {
		j.multi.closeAll()
	}
	close(j.release)
	if j.stdin != nil {
		j.stdin.stop()
	}
	deadline := time.Now().Add(drainGrace)
	for _, p := range procs {
		// Unblocks a forwarder whose pipe is held open by a descendant
		// that left the rank's process group. Pipes support deadlines.
		_ = p.stdout.SetReadDeadline(deadline)
		_ = p.stderr.SetReadDeadline(deadline)
	}
	j.wg.Wait()
	for _, p := range procs {
		closeAll(p.stdout, p.stderr)
	}
	if spawnErr != nil {
		if errors.Is(spawnErr, ErrUsage) {
			return ExitUsage, spawnErr
		}
		return ExitFailure, spawnErr
	}
	return e.code, nil
}

// sinks returns the destinations of each rank's stdout and stderr and a
// function that closes the per-rank files, if any.
func (j *job) sinks() (outs, errs []*lineSink, closeFiles func(), err error) {
	n := j.cfg.N
	outs, errs = make([]*lineSink, n), make([]*lineSink, n)
	if j.cfg.OutputDir == "" {
		for r := range n {
			outs[r], errs[r] = j.out, j.errs
		}
		return outs, errs, func() {}, nil
	}
	if err := os.MkdirAll(j.cfg.OutputDir, 0o755); err != nil {
		return nil, nil, nil, usageErrorf(err, "output directory: %v", err)
	}
	var files []*os.File
	closeFiles = func() {
		for _, f := range files {
			if err := f.Close(); err != nil {
				j.report("gorun: %v", err)
			}
		}
	}
	open := func(r int, stream string) (*lineSink, error) {
		f, err := os.Create(filepath.Join(j.cfg.OutputDir, fmt.Sprintf("rank.%d.%s", r, stream)))
		if err != nil {
			return nil, usageErrorf(err, "output directory: %v", err)
		}
		files = append(files, f)
		return &lineSink{w: f}, nil
	}
	for r := range n {
		if outs[r], err = open(r, "stdout"); err == nil {
			errs[r], err = open(r, "stderr")
		}
		if err != nil {
			closeFiles()
			return nil, nil, nil, err
		}
	}
	return outs, errs, closeFiles, nil
}

// spawnAll starts the ranks, stopping early if ctx is cancelled, and
// returns the started processes (indexed by rank) and the error that
// stopped it, if any. Each started rank already has its waiter and output
// forwarders running.
//
// The ranks are forked by one goroutine locked to its OS thread, which
// stays locked (so the Go runtime cannot end that thread) until j.release
// is closed after every rank has been reaped: the parent-death signal of
// the ranks fires when the forking thread exits, not the process.
func (j *job) spawnAll(ctx context.Context, ident rankEnv, outs, errs []*lineSink) ([]*process, error) {
	type result struct {
		procs []*process
		err   error
	}
	res := make(chan result, 1)
	j.release = make(chan struct{})
	j.wg.Add(1)
	go func() { // spawn goroutine: exits once j.release is closed
		defer j.wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		procs, err := j.startRanks(ctx, ident, outs, errs)
		res <- result{procs, err}
		<-j.release
	}()
	r := <-res
	return r.procs, r.err
}

// watch starts the waiter and the two output forwarders of p.
func (j *job) watch(p *process, outs, errs []*lineSink) {
	r := p.rank
	j.wg.Add(3)
	go func() { // waiter: exits when the rank has been reaped (or its daemon lost)
		defer j.wg.Done()
		j.exits <- rankExit{p: p, status: p.wait()}
	}()
	prefix := ""
	if j.cfg.TagOutput {
		prefix = fmt.Sprintf("[%d] ", r)
	}
	go func() { // exits at EOF of the rank's stdout or at the drain deadline
		defer j.wg.Done()
		defer p.forwarderDone()
		forwardLines(p.stdout, outs[r], prefix)
	}()
	go func() { // exits at EOF of the rank's stderr or at the drain deadline
		defer j.wg.Done()
		defer p.forwarderDone()
		forwardLines(p.stderr, errs[r], prefix)
	}()
}

// startRanks starts ranks 0..N-1 in order on the calling thread, or asks
// the daemons to start them in a multi-host job.
func (j *job) startRanks(ctx context.Context, ident rankEnv, outs, errs []*lineSink) ([]*process, error) {
	if j.multi != nil {
		return j.startRemote(ctx, ident, outs, errs)
	}
	var procs []*process
	for r := range j.cfg.N {
		if ctx.Err() != nil {
			return procs, nil // the supervision loop reports the interruption
		}
		ident.rank, ident.localRank = r, r
		spec := procSpec{
			rank: r,
			path: j.path,
			argv: j.argv,
			env:  ident.environ(j.env),
			dir:  j.cfg.Wdir,
		}
		var stdinW *os.File
		if r == 0 && j.cfg.Stdin != nil {
			pr, pw, err := os.Pipe()
			if err != nil {
				return procs, fmt.Errorf("launcher: stdin of rank 0: %w", err)
			}
			spec.stdin, stdinW = pr, pw
		}
		p, err := j.sp.start(spec)
		if spec.stdin != nil {
			closeAll(spec.stdin) // rank 0 holds its own copy
		}
		if err != nil {
			if stdinW != nil {
				closeAll(stdinW)
			}
			return procs, err
		}
		procs = append(procs, p)
		j.watch(p, outs, errs)
		if stdinW != nil {
			fw, err := newStdinForwarder(j.cfg.Stdin, stdinW)
			if err != nil {
				closeAll(stdinW)
				return procs, fmt.Errorf("launcher: stdin of rank 0: %w", err)
			}
			j.stdin = fw
			j.wg.Add(1)
			go func() { // exits at the end of Stdin, when rank 0 stops reading, or on stop
				defer j.wg.Done()
				fw.run()
			}()
		}
	}
	return procs, nil
}

// removeShm removes the job's shared-memory files on this host.
func (j *job) removeShm() {
	removeJobShm(j.id, j.log)
}

// ending decides and reports how a job ends. It is used only by the
// supervision loop of job.run.
type ending struct {
	j         *job
	srv       *rendezvous.Server
	procs     []*process // started ranks, by rank
	alive     []bool     // not yet reaped, by rank
	remaining int        // number of alive ranks
	ended     bool       // the cause has been decided
	code      int        // exit status, once ended

	// pending is a failed rank whose report waits for pendingPeer, a peer
	// it reported lost, to be reaped (at most blameWait).
	pending     *rankExit
	pendingPeer int
}

// signalAll sends sig to the process group of every started rank.
func (e *ending) signalAll(sig syscall.Signal) {
	for _, p := range e.procs {
		if err := p.signalGroup(sig); err != nil {
			e.j.log.Warn("launcher: signal rank", "rank", p.rank, "pid", p.pid, "signal", sig, "err", err)
		}
	}
}

// rankFailed ends the job because of ex; the caller has already begun to
// stop the other ranks. The report waits (briefly) for the rank's last
// output, so that it comes after the rank's own last words.
func (e *ending) rankFailed(ex rankExit) {
	e.ended = true
	e.code = ex.status.exitCode()
	how := ex.status.describe()
	if !ex.status.failed() {
		e.code = ExitFailure
		how += " without calling Finalize"
	}
	what := fmt.Sprintf("rank %d (pid %d on host %s) %s", ex.p.rank, ex.p.pid, ex.p.host, how)
	e.srv.Notify(rendezvous.Event{Kind: rendezvous.EventRankFailed, Rank: ex.p.rank, Code: e.code, Text: what})
	t := time.NewTimer(lastWordsWait)
	select {
	case <-ex.p.drained:
	case <-t.C:
	}
	t.Stop()
	e.j.report("gorun: %s%s", what, stopping(e.remaining, true))
}

// hostLost ends the job because the daemon of ex's host was lost, telling
// the ranks (their blocked calls fail with an error naming the host); the
// caller stops them a moment later. The report counts the ranks on the
// other hosts, since those of the lost host are gone with it.
func (e *ending) hostLost(ex rankExit) {
	e.ended = true
	e.code = ExitFailure
	what := fmt.Sprintf("lost the daemon on host %s (%s)", ex.p.host, ex.status.lost)
	others := 0
	for _, p := range e.procs {
		if e.alive[p.rank] && p.host != ex.p.host {
			others++
		}
	}
	e.srv.Notify(rendezvous.Event{Kind: rendezvous.EventAbort, Rank: -1, Code: e.code, Text: what})
	e.j.report("gorun: %s%s", what, stopping(others, false))
}

// abort ends the job because a rank called Abort.
func (e *ending) abort(a abortReq) {
	e.ended = true
	e.code = a.code
	if e.code < 1 || e.code > 255 {
		e.code = 1
	}
	others := e.remaining
	if a.rank >= 0 && a.rank < len(e.alive) && e.alive[a.rank] {
		others--
	}
	e.j.report("gorun: rank %d called Abort(code %d): %s%s", a.rank, a.code, a.msg, stopping(others, true))
	e.srv.Notify(rendezvous.Event{Kind: rendezvous.EventAbort, Rank: a.rank, Code: a.code,
		Text: fmt.Sprintf("rank %d called Abort(code %d): %s", a.rank, a.code, a.msg)})
}

// interrupted ends the job because ctx was cancelled.
func (e *ending) interrupted(ctx context.Context) {
	e.ended = true
	e.code = interruptCode(ctx)
	e.j.report("gorun: interrupted%s", stopping(e.remaining, false))
	e.srv.Notify(rendezvous.Event{Kind: rendezvous.EventAbort, Rank: -1, Code: e.code, Text: "the job was interrupted"})
}

// timedOut ends the job because Config.Timeout expired.
func (e *ending) timedOut() {
	e.ended = true
	e.code = ExitTimeout
	e.j.report("gorun: job timed out after %v%s", e.j.cfg.Timeout, stopping(e.remaining, false))
	e.srv.Notify(rendezvous.Event{Kind: rendezvous.EventAbort, Rank: -1, Code: e.code,
		Text: fmt.Sprintf("the job timed out after %v", e.j.cfg.Timeout)})
}

// stopping returns "; stopping 3 other ranks" (or "; stopping 3 ranks"
// when other is false), or "" when no rank is left.
func stopping(n int, other bool) string {
	if n == 0 {
		return ""
	}
	s := "; stopping "
	if other {
		s += fmt.Sprintf("%d other rank", n)
	} else {
		s += fmt.Sprintf("%d rank", n)
	}
	if n != 1 {
		s += "s"
	}
	return s
}
