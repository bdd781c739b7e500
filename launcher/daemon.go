package launcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gorun-hpc/gorun/runtime/auth"
)

// Timing of the daemon protocol.
const (
	// daemonAuthTimeout bounds the auth exchange of a new connection, on
	// both sides: a few round trips, so plenty even across a slow network,
	// and short, since a connection holds a handshake slot until then.
	daemonAuthTimeout = 5 * time.Second
	// heartbeat is how often each side sends a ping.
	heartbeat = time.Second
	// deadAfter is how long a side waits for any frame before it declares
	// the connection lost. With heartbeat it bounds how long ranks outlive
	// a lost launcher (deadAfter + termGrace < 5 s).
	deadAfter = 3 * time.Second
	// maxHandshakes bounds the connections authenticating at once, so a
	// flood cannot exhaust the daemon. When they are all taken a new
	// connection evicts the oldest handshake of the source holding the
	// most (see claimHandshake): floods from many addresses then cost
	// each other their slots, not the launcher its one.
	maxHandshakes = 64
	// maxPeerHandshakes bounds the connections from one source (an IPv4
	// address, an IPv6 /64) authenticating at once; more from there are
	// closed at once, so that one misbehaving peer cannot take every slot
	// of maxHandshakes and lock out the launchers of other hosts. A
	// launcher opens one connection per daemon and authenticates in
	// milliseconds, so even many jobs started at once from one login node
	// rarely hold more than a few.
	maxPeerHandshakes = 8
	// endWait bounds how long the end of a job waits for the other side.
	endWait = 3 * time.Second
)

// Daemon runs the ranks of multi-host jobs on its host for gorun launchers
// that prove the shared secret (see [Daemon.Serve]).
type Daemon struct {
	// Secret is the shared secret (see [ReadSecret]); required.
	Secret []byte
	// Logger receives the daemon's log; nil discards it.
	Logger *slog.Logger
	// CacheDir holds executables shipped by gorun --stage, named by their
	// SHA-256; "" means the user's cache directory + /gorun/exe.
	CacheDir string
	// AuthTimeout bounds the auth exchange of a new connection; 0 means 5
	// seconds.
	AuthTimeout time.Duration
}

// Serve accepts launchers on ln until ctx is done or ln fails, serving
// every connection concurrently: each is one job. A connection must prove
// Secret (the auth exchange of package runtime/auth, label
// [DaemonAuthLabel]) within AuthTimeout; nothing else is read from it
// before. A connection that fails, stalls or sends garbage is closed and
// logged; the others go on. At most 8 connections from one source address
// (IPv6: one /64) may be authenticating at once; a ninth is closed at once.
// At most 64 in all may be: a new connection beyond that closes the oldest
// handshake of the source that holds the most. So a peer that floods the
// daemon with idle connections, from one address or many, locks out
// nobody but itself: a launcher holds at most a few slots, and its new
// connection takes one from the largest flood.
//
// For each job the daemon starts the requested ranks as its own user,
// forwards their output and exit statuses, and kills them (SIGTERM, then
// SIGKILL a second later, to every rank's process group) when the launcher
// ends the job or its connection is lost (no frame for 3 seconds; the
// launcher sends one every second); it then removes the job's shared
// memory (/dev/shm/gorun-<job>-*). If the daemon itself dies, the kernel
// kills its ranks (parent-death signal).
//
// Serve closes ln and returns nil once ctx is done and every job has been
// torn down; it returns an error if ln fails otherwise.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	if len(d.Secret) == 0 {
		return fmt.Errorf("launcher: daemon: %w", auth.ErrNoKey)
	}
	if d.AuthTimeout < 0 {
		return fmt.Errorf("launcher: daemon: negative auth timeout %v", d.AuthTimeout)
	}
	ds := &daemonState{
		d:           d,
		log:         d.Logger,
		jobs:        make(map[string]bool),
		peers:       make(map[string]*peerHandshakes),
		cacheDir:    d.CacheDir,
		authTimeout: d.AuthTimeout,
	}
	if ds.log == nil {
		ds.log = slog.New(slog.DiscardHandler)
	}
	if ds.authTimeout == 0 {
		ds.authTimeout = daemonAuthTimeout
	}
	if ds.cacheDir == "" {
		ds.cacheDir = defaultCacheDir()
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // closes ln when ctx is done (which the end of Serve ensures); joined below
		defer wg.Done()
		<-ctx.Done()
		_ = ln.Close()
	}()
	ds.log.Info("daemon: serving", "addr", ln.Addr().String(), "cache", ds.cacheDir)
	var err error
	backoff := 5 * time.Millisecond
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(aerr, net.ErrClosed) {
				err = fmt.Errorf("launcher: daemon: %w", aerr)
				break
			}
			// Out of file descriptors and the like: wait and retry.
			ds.log.Warn("daemon: accept", "err", aerr)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		wg.Add(1)
		go func() { // serves one launcher: exits once its job is torn down (ctx done tears it down)
			defer wg.Done()
			ds.serveConn(ctx, c)
		}()
	}
	cancel()
	wg.Wait()
	ds.log.Info("daemon: stopped")
	return err
}

// defaultCacheDir is where staged executables go by default.
func defaultCacheDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "gorun", "exe")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("gorun-exe-%d", os.Getuid()))
}

// daemonState is what the connections of one Serve share.
type daemonState struct {
	d           *Daemon
	log         *slog.Logger
	cacheDir    string
	authTimeout time.Duration

	mu         sync.Mutex
	jobs       map[string]bool            // ids of the jobs being served
	handshakes int                        // connections authenticating
	peers      map[string]*peerHandshakes // by peerSource, while it has some
	arrivals   uint64                     // handshakes claimed so far: orders them by age
	fullLogged time.Time                  // when an eviction was last logged
}

// peerHandshakes holds the connections from one source that are
// authenticating, oldest first, and counts those refused since it last had
// none.
type peerHandshakes struct {
	hs      []*handshake
	refused int
}

// handshake is a connection holding a handshake slot.
type handshake struct {
	c       net.Conn
	source  string
	arrival uint64 // lower is older
	evicted bool   // its slot was given to a newer connection (under ds.mu)
}

// peerSource is the key under which a connection from addr counts toward
// maxPeerHandshakes: its IPv4 address, or the /64 of its IPv6 address (a
// single host commonly has a whole /64).
func peerSource(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return addr.String()
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64) // cannot fail for an IPv6 address
		return p.String()
	}
	return ip.String()
}

// claimHandshake takes a handshake slot for c, from source. It returns nil
// if source has maxPeerHandshakes connections authenticating already; why
// then says so for the log at the first refusal from that source (the rest
// are summed up by releaseHandshake), and is empty otherwise.
//
// When every one of the maxHandshakes slots is taken, c gets the slot of
// the oldest handshake of the source holding the most, which is closed
// (and returned as evicted, for the log). A flood from many addresses
// fills the slots, but each new connection of a launcher then evicts a
// flooder, never another launcher that holds fewer: the largest source
// loses first, and among equals the connection that has had longest to
// prove the secret, when a launcher's proof takes milliseconds.
func (ds *daemonState) claimHandshake(c net.Conn, source string) (h, evicted *handshake, why string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ph := ds.peers[source]
	if ph != nil && len(ph.hs) >= maxPeerHandshakes {
		if ph.refused++; ph.refused == 1 {
			why = fmt.Sprintf("%d connections from %s are authenticating already", len(ph.hs), source)
		}
		return nil, nil, why
	}
	if ds.handshakes >= maxHandshakes {
		evicted = ds.evictLocked()
		if now := time.Now(); now.Sub(ds.fullLogged) >= time.Second {
			ds.fullLogged = now
			why = fmt.Sprintf("%d connections are authenticating already", ds.handshakes+1)
		}
		ph = ds.peers[source] // the eviction may have removed it
	}
	if ph == nil {
		ph = &peerHandshakes{}
		ds.peers[source] = ph
	}
	ds.arrivals++
	h = &handshake{c: c, source: source, arrival: ds.arrivals}
	ph.hs = append(ph.hs, h)
	ds.handshakes++
	return h, evicted, why
}

// evictLocked takes the slot of the oldest handshake of the source that
// holds the most and closes its connection, which ends its handshake.
func (ds *daemonState) evictLocked() *handshake {
	var victim *peerHandshakes
	for _, ph := range ds.peers {
		if victim == nil || len(ph.hs) > len(victim.hs) ||
			(len(ph.hs) == len(victim.hs) && ph.hs[0].arrival < victim.hs[0].arrival) {
			victim = ph
		}
	}
	h := victim.hs[0]
	ds.dropLocked(h)
	h.evicted = true
	_ = h.c.Close() // its auth fails now; serveConn sees evicted
	return h
}

// dropLocked removes h from the handshakes in progress.
func (ds *daemonState) dropLocked(h *handshake) *peerHandshakes {
	ds.handshakes--
	ph := ds.peers[h.source]
	if i := slices.Index(ph.hs, h); i >= 0 {
		ph.hs = slices.Delete(ph.hs, i, i+1)
	}
	if len(ph.hs) == 0 {
		delete(ds.peers, h.source)
	}
	return ph
}

// releaseHandshake gives back the slot of h, unless it was evicted. It
// returns how many connections from h's source were refused since it last
// had none, once it has none again (0 otherwise), and whether h was
// evicted.
func (ds *daemonState) releaseHandshake(h *handshake) (refused int, evicted bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if h.evicted {
		return 0, true
	}
	if ph := ds.dropLocked(h); len(ph.hs) == 0 {
		return ph.refused, false
	}
	return 0, false
}

// claimJob registers job, reporting false if it is already served.
func (ds *daemonState) claimJob(job string) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.jobs[job] {
		return false
	}
	ds.jobs[job] = true
	return true
}

func (ds *daemonState) releaseJob(job string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	delete(ds.jobs, job)
}

// serveConn authenticates c and serves its job.
func (ds *daemonState) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	log := ds.log.With("peer", c.RemoteAddr().String())
	source := peerSource(c.RemoteAddr())
	h, evicted, why := ds.claimHandshake(c, source)
	switch {
	case h == nil:
		if why != "" {
			log.Warn("daemon: closing new connections at once while too many from their source are authenticating", "why", why)
		}
		return
	case evicted != nil && why != "":
		// Logged at most once a second: a flood evicts at its own rate.
		log.Warn("daemon: every handshake slot is taken; closing the oldest handshake of the source holding the most",
			"why", why, "closed", evicted.c.RemoteAddr().String())
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	_ = c.SetDeadline(time.Now().Add(ds.authTimeout))
	err := auth.Server(c, ds.d.Secret, DaemonAuthLabel)
	refused, wasEvicted := ds.releaseHandshake(h)
	if refused > 0 {
		log.Warn("daemon: closed connections from a source that had too many authenticating at once", "source", source, "closed", refused)
	}
	if wasEvicted {
		log.Debug("daemon: closed a handshake to make room for a newer connection", "err", err)
		return
	}
	if err != nil {
		if errors.Is(err, auth.ErrDenied) {
			log.Warn("daemon: refused a launcher with the wrong secret")
		} else {
			log.Warn("daemon: closed a connection that failed the handshake", "err", err)
		}
		return
	}
	_ = c.SetDeadline(time.Time{})
	log.Debug("daemon: launcher authenticated")
	ss := &session{
		ds: ds, c: c, log: log,
		ranks:   make(map[int]*drank),
		done:    make(chan struct{}),
		forked:  make(chan struct{}),
		release: make(chan struct{}),
	}
	ss.run(ctx)
}

// session is one authenticated launcher connection and its job.
type session struct {
	ds  *daemonState
	c   net.Conn
	log *slog.Logger

	wmu     sync.Mutex // serializes frames on c
	sendErr error      // first write error, under wmu

	job     string // set by the spawn request
	spawned bool   // a spawn request was accepted (only the reader touches it)
	stage   *stager

	mu      sync.Mutex
	ranks   map[int]*drank // started ranks
	closing bool           // no more ranks may be started

	done    chan struct{}  // closed when the session ends: stops the pinger
	forked  chan struct{}  // closed when the forking goroutine has started all it will
	release chan struct{}  // closed after every rank is reaped: frees the forking thread
	wg      sync.WaitGroup // every goroutine of the session
	waiters sync.WaitGroup // the rank waiters (also in wg), so that their exits precede dopEnded
}

// drank is a rank started by the daemon.
type drank struct {
	rank   int
	p      *process
	reaped chan struct{} // closed once the rank has been reaped
}

// send writes m as one frame. After a write error it fails at once.
func (ss *session) send(m *dmsg) error {
	b, err := encodeDFrame(m)
	if err != nil {
		return err
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	if ss.sendErr != nil {
		return ss.sendErr
	}
	if _, err := ss.c.Write(b); err != nil {
		ss.sendErr = fmt.Errorf("launcher: daemon: send: %w", err)
	}
	return ss.sendErr
}

// sendError tells the launcher that a request failed.
func (ss *session) sendError(kind int, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	ss.log.Warn("daemon: request failed", "err", text)
	_ = ss.send(&dmsg{op: dopError, kind: kind, text: text})
}

func (ss *session) run(ctx context.Context) {
	host, _ := os.Hostname()
	if err := ss.send(&dmsg{op: dopHello, text: truncate(host, maxTextLen)}); err != nil {
		return
	}
	ss.wg.Add(1)
	go func() { // pinger: exits when the session ends (ss.done)
		defer ss.wg.Done()
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if ss.send(&dmsg{op: dopPing}) != nil {
					return
				}
			case <-ss.done:
				return
			}
		}
	}()

	ended, reason := ss.readLoop(ctx)
	if ss.spawned {
		ss.log.Info("daemon: job ending", "why", reason)
	}
	if !ended {
		// The launcher is gone: nothing more can reach it. Closing also
		// unblocks writers stuck on a dead network.
		_ = ss.c.Close()
	} else {
		_ = ss.c.SetWriteDeadline(time.Now().Add(endWait))
	}
	ss.teardown()
	if ss.stage != nil {
		ss.stage.abandon()
	}
	if ended {
		ss.waiters.Wait() // bounded by lastWordsWait and the write deadline
		_ = ss.send(&dmsg{op: dopEnded})
	}
	close(ss.done)
	_ = ss.c.Close()
	ss.wg.Wait()
	if ss.spawned {
		ss.ds.releaseJob(ss.job)
		ss.log.Info("daemon: job ended")
	}
}

// readLoop handles the launcher's frames until the job ends (ended) or the
// connection is lost or misbehaves (reason says how).
func (ss *session) readLoop(ctx context.Context) (ended bool, reason string) {
	for {
		if ctx.Err() != nil {
			return false, "the daemon is stopping"
		}
		_ = ss.c.SetReadDeadline(time.Now().Add(deadAfter))
		m, err := readDFrame(ss.c)
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				return false, "the daemon is stopping"
			case errors.As(err, &ne) && ne.Timeout():
				return false, fmt.Sprintf("no word from the launcher for %v", deadAfter)
			case errors.Is(err, errDaemonFrame):
				ss.sendError(errKindProto, "%v", err)
			}
			return false, fmt.Sprintf("lost the launcher: %v", err)
		}
		switch m.op {
		case dopPing:
		case dopSpawn:
			if ss.spawned {
				ss.sendError(errKindProto, "a second spawn request on one connection")
				return false, "protocol error"
			}
			ss.spawn(m)
		case dopSignal:
			ss.signal(m.rank, syscall.Signal(m.signal))
		case dopEnd:
			return true, "the launcher ended the job"
		case dopExeQuery:
			_, err := os.Stat(ss.exePath(m.sha))
			if err == nil {
				ss.log.Info("daemon: staged program found in the cache", "sha256", hex.EncodeToString(m.sha))
			}
			if ss.send(&dmsg{op: dopExeStatus, have: err == nil}) != nil {
				return false, "lost the launcher"
			}
		case dopExeChunk:
			if err := ss.stageChunk(m.data); err != nil {
				ss.sendError(errKindFailure, "%v", err)
			}
		case dopExeDone:
			if err := ss.stageDone(m.sha); err != nil {
				ss.sendError(errKindFailure, "%v", err)
			} else if ss.send(&dmsg{op: dopExeStatus, have: true}) != nil {
				return false, "lost the launcher"
			}
		default:
			ss.sendError(errKindProto, "unexpected op %d from a launcher", m.op)
			return false, "protocol error"
		}
	}
}

// exePath is where the staged executable with hash sha is cached.
func (ss *session) exePath(sha []byte) string {
	return filepath.Join(ss.ds.cacheDir, hex.EncodeToString(sha))
}

// stager receives a staged executable.
type stager struct {
	f    *os.File
	h    hash.Hash
	n    int64
	fail error // the first error; later chunks are dropped
}

func (st *stager) abandon() {
	if st.f != nil {
		_ = st.f.Close()
		_ = os.Remove(st.f.Name())
		st.f = nil
	}
}

func (ss *session) stageChunk(data []byte) error {
	if ss.stage == nil {
		ss.stage = &stager{h: sha256.New()}
		if err := os.MkdirAll(ss.ds.cacheDir, 0o700); err != nil {
			ss.stage.fail = fmt.Errorf("cannot create the cache directory %s: %w", ss.ds.cacheDir, err)
			return ss.stage.fail
		}
		f, err := os.CreateTemp(ss.ds.cacheDir, ".staging-*")
		if err != nil {
			ss.stage.fail = fmt.Errorf("cannot store the staged program: %w", err)
			return ss.stage.fail
		}
		ss.stage.f = f
	}
	st := ss.stage
	if st.fail != nil {
		return nil // reported already
	}
	st.n += int64(len(data))
	if st.n > maxExeSize {
		st.fail = fmt.Errorf("the staged program exceeds %d bytes", maxExeSize)
		st.abandon()
		return st.fail
	}
	st.h.Write(data)
	if _, err := st.f.Write(data); err != nil {
		st.fail = fmt.Errorf("cannot store the staged program: %w", err)
		st.abandon()
		return st.fail
	}
	return nil
}

func (ss *session) stageDone(sha []byte) error {
	if ss.stage == nil { // an empty program: no chunk came
		if err := ss.stageChunk(nil); err != nil {
			ss.stage.abandon()
			ss.stage = nil
			return err
		}
	}
	st := ss.stage
	ss.stage = nil
	defer st.abandon()
	if st.fail != nil {
		return st.fail
	}
	if got := st.h.Sum(nil); !bytes.Equal(got, sha) {
		return fmt.Errorf("the staged program arrived damaged (SHA-256 %x, want %x)", got, sha)
	}
	if err := st.f.Chmod(0o700); err != nil {
		return fmt.Errorf("cannot store the staged program: %w", err)
	}
	if err := st.f.Close(); err != nil {
		return fmt.Errorf("cannot store the staged program: %w", err)
	}
	name := st.f.Name()
	st.f = nil
	if err := os.Rename(name, ss.exePath(sha)); err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("cannot store the staged program: %w", err)
	}
	ss.log.Info("daemon: staged a program", "sha256", hex.EncodeToString(sha), "bytes", st.n)
	return nil
}

// spawn starts the ranks of m on a goroutine locked to its thread, which
// stays locked until every rank is reaped (see job.spawnAll for why).
// Errors go to the launcher as error frames.
func (ss *session) spawn(m dmsg) {
	if !ss.ds.claimJob(m.job) {
		ss.sendError(errKindFailure, "job %s already runs on this daemon", m.job)
		close(ss.forked)
		return
	}
	ss.spawned, ss.job = true, m.job
	ss.log = ss.log.With("job", m.job)
	path, dir, env, err := ss.prepare(m)
	if err != nil {
		ss.sendError(errKindUsage, "%v", err)
		close(ss.forked)
		return
	}
	argv := m.argv
	if len(argv) == 0 {
		argv = []string{path}
	}
	seen := make(map[int]bool, len(m.ranks))
	for _, r := range m.ranks {
		if seen[r.rank] {
			ss.sendError(errKindProto, "rank %d requested twice", r.rank)
			close(ss.forked)
			return
		}
		seen[r.rank] = true
		for _, kv := range r.env {
			if !validEnvEntry(kv) {
				ss.sendError(errKindProto, "bad environment entry for rank %d", r.rank)
				close(ss.forked)
				return
			}
		}
	}
	ss.log.Info("daemon: starting ranks", "ranks", len(m.ranks), "path", path, "dir", dir)
	ss.wg.Add(1)
	go func() { // forking thread: exits once every rank is reaped (ss.release)
		defer ss.wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		sp := localSpawner{}
		for _, r := range m.ranks {
			renv := slices.Clone(env)
			for _, kv := range r.env {
				name, value, _ := strings.Cut(kv, "=")
				renv = setEnv(renv, name, value)
			}
			ss.mu.Lock()
			closing := ss.closing
			ss.mu.Unlock()
			if closing {
				break
			}
			p, err := sp.start(procSpec{rank: r.rank, path: path, argv: argv, env: renv, dir: dir})
			if err != nil {
				ss.sendError(errKindFailure, "cannot start rank %d: %v", r.rank, err)
				break
			}
			ss.started(p)
		}
		close(ss.forked)
		<-ss.release
	}()
}

// validEnvEntry reports whether kv is NAME=VALUE without NUL bytes.
func validEnvEntry(kv string) bool {
	name, _, ok := strings.Cut(kv, "=")
	return ok && name != "" && !strings.ContainsRune(kv, 0)
}

// prepare resolves the program and working directory of m on this host and
// builds the environment shared by its ranks: the daemon's own, without
// the launcher's variables, with m's entries set.
func (ss *session) prepare(m dmsg) (path, dir string, env []string, err error) {
	for _, kv := range m.env {
		if !validEnvEntry(kv) {
			return "", "", nil, fmt.Errorf("bad environment entry %q", truncate(kv, 64))
		}
	}
	switch {
	case m.sha != nil:
		path = ss.exePath(m.sha)
		if _, err := os.Stat(path); err != nil {
			return "", "", nil, fmt.Errorf("the staged program %x is not in the cache", m.sha)
		}
	case !strings.Contains(m.path, "/"):
		if path, err = exec.LookPath(m.path); err != nil {
			return "", "", nil, fmt.Errorf("program %q not found on PATH", m.path)
		}
	default:
		path = m.path
		if !filepath.IsAbs(path) {
			return "", "", nil, fmt.Errorf("program path %q is not absolute", path)
		}
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", "", nil, fmt.Errorf("program %s does not exist (copy it there or use --stage)", path)
		case err != nil:
			return "", "", nil, fmt.Errorf("program %s: %w", path, err)
		case !fi.Mode().IsRegular():
			return "", "", nil, fmt.Errorf("program %s is not a regular file", path)
		}
		if err := unix.Access(path, unix.X_OK); err != nil {
			return "", "", nil, fmt.Errorf("program %s is not executable", path)
		}
	}
	if dir = m.dir; dir != "" {
		fi, err := os.Stat(dir)
		switch {
		case err != nil:
			return "", "", nil, fmt.Errorf("working directory %s does not exist (give another with --wdir)", dir)
		case !fi.IsDir():
			return "", "", nil, fmt.Errorf("working directory %s is not a directory", dir)
		}
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(launcherVars, name) {
			env = append(env, kv)
		}
	}
	for _, kv := range m.env {
		name, value, _ := strings.Cut(kv, "=")
		env = setEnv(env, name, value)
	}
	return path, dir, env, nil
}

// started records p and starts its waiter and output pumps; it runs on the
// forking thread.
func (ss *session) started(p *process) {
	dr := &drank{rank: p.rank, p: p, reaped: make(chan struct{})}
	ss.mu.Lock()
	ss.ranks[p.rank] = dr
	ss.mu.Unlock()
	ss.log.Debug("daemon: rank started", "rank", p.rank, "pid", p.pid)
	_ = ss.send(&dmsg{op: dopStarted, rank: p.rank, pid: p.pid})
	ss.wg.Add(3)
	ss.waiters.Add(1)
	go func() { // output pump: exits at EOF of the rank's stdout or at the drain deadline
		defer ss.wg.Done()
		ss.pump(p, streamStdout, p.stdout)
	}()
	go func() { // output pump: exits at EOF of the rank's stderr or at the drain deadline
		defer ss.wg.Done()
		ss.pump(p, streamStderr, p.stderr)
	}()
	go func() { // waiter: exits once the rank is reaped and its exit reported
		defer ss.wg.Done()
		defer ss.waiters.Done()
		st := p.wait()
		close(dr.reaped)
		ss.log.Debug("daemon: rank exited", "rank", p.rank, "pid", p.pid, "status", st.describe())
		// Its output first, as far as it comes soon.
		t := time.NewTimer(lastWordsWait)
		select {
		case <-p.drained:
		case <-t.C:
		}
		t.Stop()
		m := &dmsg{op: dopExit, rank: p.rank, code: st.code}
		if st.signalled {
			m.code, m.signal = 0, int(st.signal)
		}
		_ = ss.send(m)
	}()
}

// pump forwards one output stream of p in chunks. Once the launcher cannot
// be reached it keeps reading, so that the rank does not block on a full
// pipe before it is killed.
func (ss *session) pump(p *process, stream int, f *os.File) {
	defer p.forwarderDone()
	buf := make([]byte, maxOutputChunk)
	ok := true
	for {
		n, err := f.Read(buf)
		if n > 0 && ok {
			ok = ss.send(&dmsg{op: dopOutput, rank: p.rank, stream: stream, data: buf[:n]}) == nil
		}
		if err != nil {
			return
		}
	}
}

// signal sends sig to the process group of rank, if the session started it.
func (ss *session) signal(rank int, sig syscall.Signal) {
	ss.mu.Lock()
	dr := ss.ranks[rank]
	ss.mu.Unlock()
	if dr == nil {
		return
	}
	if err := dr.p.signalGroup(sig); err != nil {
		ss.log.Warn("daemon: signal rank", "rank", rank, "pid", dr.p.pid, "signal", sig, "err", err)
	}
}

// teardown stops the job: no more ranks start, every rank still running
// gets SIGTERM and, termGrace later, SIGKILL; once all are reaped their
// process groups are killed, the forking thread is released, the output
// pumps get a deadline and the job's shared memory is removed.
func (ss *session) teardown() {
	ss.mu.Lock()
	ss.closing = true
	ss.mu.Unlock()
	if !ss.spawned {
		return
	}
	<-ss.forked
	ss.mu.Lock()
	ranks := make([]*drank, 0, len(ss.ranks))
	for _, dr := range ss.ranks {
		ranks = append(ranks, dr)
	}
	ss.mu.Unlock()
	signalAll := func(sig syscall.Signal, alsoReaped bool) {
		for _, dr := range ranks {
			select {
			case <-dr.reaped:
				if !alsoReaped {
					continue
				}
			default:
			}
			if err := dr.p.signalGroup(sig); err != nil {
				ss.log.Warn("daemon: signal rank", "rank", dr.rank, "pid", dr.p.pid, "signal", sig, "err", err)
			}
		}
	}
	signalAll(syscall.SIGTERM, false)
	kill := time.NewTimer(termGrace)
	for _, dr := range ranks {
		select {
		case <-dr.reaped:
			continue
		case <-kill.C:
			signalAll(syscall.SIGKILL, false)
		}
		<-dr.reaped
	}
	kill.Stop()
	signalAll(syscall.SIGKILL, true)
	close(ss.release)
	deadline := time.Now().Add(drainGrace)
	for _, dr := range ranks {
		_ = dr.p.stdout.SetReadDeadline(deadline)
		_ = dr.p.stderr.SetReadDeadline(deadline)
	}
	removeJobShm(ss.job, ss.log)
}

// removeJobShm removes the shared-memory files of job, whose id is
// validated hex.
func removeJobShm(job string, log *slog.Logger) {
	if !validJobID(job) {
		return
	}
	paths, err := filepath.Glob("/dev/shm/gorun-" + job + "-*")
	if err != nil {
		return
	}
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			log.Warn("launcher: remove shared memory", "path", p, "err", err)
		}
	}
}
