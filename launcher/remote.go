package launcher

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/runtime/auth"
)

const (
	// dialTimeout bounds connecting to a daemon.
	dialTimeout = 5 * time.Second
	// smallWriteTimeout bounds writing a control frame; a daemon whose
	// connection cannot take a few bytes for that long is being lost.
	smallWriteTimeout = 2 * time.Second
	// chunkWriteTimeout bounds writing one staged executable chunk.
	chunkWriteTimeout = 30 * time.Second
	// replyTimeout bounds waiting for the answer to a staging request.
	replyTimeout = 30 * time.Second
)

// daemonConn is the launcher's authenticated connection to the daemon of
// one host. Its reader and pinger goroutines belong to the job (joined by
// job.wg) and exit after close.
type daemonConn struct {
	host string // the host's name as listed (the ranks' GORUN_HOST)
	addr string
	c    net.Conn
	log  *slog.Logger

	wmu     sync.Mutex // serializes frames on c
	sendErr error      // first write error, under wmu

	mu    sync.Mutex
	ranks map[int]*remoteRank // ranks requested from this daemon

	ctl     chan dmsg     // error and staging replies, for the spawner
	lost    chan struct{} // closed when the reader ends without dopEnded
	lostErr error         // why, set before lost is closed
	ended   chan struct{} // closed when the reader has ended
	done    chan struct{} // closed by close: stops the pinger
	closeMu sync.Once
}

// remoteRank is a rank started (or to be started) by a daemon. The
// reader writes its output into the write ends of two pipes whose read
// ends are the process's stdout and stderr, as for a local rank.
type remoteRank struct {
	dc         *daemonConn
	rank       int
	outR, errR *os.File        // for the job's forwarders
	outW, errW *os.File        // the reader's
	started    chan int        // the pid, once; buffered
	exit       chan exitStatus // once; buffered
	exited     bool            // reader only
}

// dialDaemon connects to the daemon of host at addr and proves secret;
// wg gets the connection's goroutines.
func dialDaemon(ctx context.Context, host, addr string, secret []byte, log *slog.Logger, wg *sync.WaitGroup) (*daemonConn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("launcher: cannot reach the daemon of host %s at %s (is \"gorun daemon\" running there?): %w", host, addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(daemonAuthTimeout))
	err = auth.Client(c, secret, DaemonAuthLabel)
	if err == nil {
		var m dmsg
		m, err = readDFrame(c)
		if err == nil && m.op != dopHello {
			err = fmt.Errorf("%w: op %d instead of hello", errDaemonFrame, m.op)
		}
	}
	if err != nil {
		_ = c.Close()
		switch {
		case errors.Is(err, auth.ErrRejected):
			return nil, usageErrorf(err, "the daemon of host %s (%s) rejected our secret: its secret file differs from ours (copy the same secret file to every host)", host, addr)
		case errors.Is(err, auth.ErrDenied):
			return nil, usageErrorf(err, "the daemon of host %s (%s) could not prove the secret: its secret file differs from ours, or it is not our daemon", host, addr)
		case errors.Is(err, auth.ErrProtocol), errors.Is(err, errDaemonFrame):
			return nil, fmt.Errorf("launcher: %s (host %s) is not a gorun daemon: %w", addr, host, err)
		}
		return nil, fmt.Errorf("launcher: handshake with the daemon of host %s (%s): %w", host, addr, err)
	}
	_ = c.SetDeadline(time.Time{})
	dc := &daemonConn{
		host: host, addr: addr, c: c, log: log.With("host", host),
		ranks: make(map[int]*remoteRank),
		ctl:   make(chan dmsg, 16),
		lost:  make(chan struct{}),
		ended: make(chan struct{}),
		done:  make(chan struct{}),
	}
	wg.Add(2)
	go func() { // reader: exits when the daemon ends the job or the connection fails or is closed
		defer wg.Done()
		dc.readLoop()
	}()
	go func() { // pinger: exits on close or at the first failed write
		defer wg.Done()
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if dc.send(&dmsg{op: dopPing}) != nil {
					return
				}
			case <-dc.done:
				return
			}
		}
	}()
	return dc, nil
}

// send writes m as one frame, with a write deadline. After a write error
// it fails at once.
func (dc *daemonConn) send(m *dmsg) error {
	b, err := encodeDFrame(m)
	if err != nil {
		return err
	}
	timeout := smallWriteTimeout
	if len(b) > 64<<10 {
		timeout = chunkWriteTimeout
	}
	dc.wmu.Lock()
	defer dc.wmu.Unlock()
	if dc.sendErr != nil {
		return dc.sendErr
	}
	_ = dc.c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := dc.c.Write(b); err != nil {
		dc.sendErr = fmt.Errorf("launcher: send to the daemon of host %s: %w", dc.host, err)
	}
	return dc.sendErr
}

// isLost reports whether the connection has been lost.
func (dc *daemonConn) isLost() bool {
	select {
	case <-dc.lost:
		return true
	default:
		return false
	}
}

func (dc *daemonConn) rank(r int) *remoteRank {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.ranks[r]
}

// addRank registers rank r with its output pipes.
func (dc *daemonConn) addRank(r int) (*remoteRank, error) {
	rr := &remoteRank{dc: dc, rank: r, started: make(chan int, 1), exit: make(chan exitStatus, 1)}
	var err error
	if rr.outR, rr.outW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("launcher: output pipe of rank %d: %w", r, err)
	}
	if rr.errR, rr.errW, err = os.Pipe(); err != nil {
		closeAll(rr.outR, rr.outW)
		return nil, fmt.Errorf("launcher: output pipe of rank %d: %w", r, err)
	}
	dc.mu.Lock()
	dc.ranks[r] = rr
	dc.mu.Unlock()
	return rr, nil
}

// readLoop handles the daemon's frames. When it ends, every rank that has
// not exited gets an exit status that says the daemon was lost.
func (dc *daemonConn) readLoop() {
	var err error
	ended := false
	for !ended && err == nil {
		_ = dc.c.SetReadDeadline(time.Now().Add(deadAfter))
		var m dmsg
		if m, err = readDFrame(dc.c); err != nil {
			break
		}
		switch m.op {
		case dopPing, dopHello:
		case dopStarted:
			if rr := dc.rank(m.rank); rr != nil {
				select {
				case rr.started <- m.pid:
				default: // a second start report for one rank: ignore it
				}
			}
		case dopOutput:
			if rr := dc.rank(m.rank); rr != nil && !rr.exited {
				w := rr.outW
				if m.stream == streamStderr {
					w = rr.errW
				}
				// A write fails only once the job stopped reading.
				_, _ = w.Write(m.data)
			}
		case dopExit:
			if rr := dc.rank(m.rank); rr != nil && !rr.exited {
				st := exitStatus{code: m.code}
				if m.signal != 0 {
					st = exitStatus{signalled: true, signal: syscall.Signal(m.signal)}
				}
				rr.finish(st)
			}
		case dopError, dopExeStatus:
			select {
			case dc.ctl <- m:
			default:
				dc.log.Warn("launcher: dropped a daemon reply", "op", m.op, "text", m.text)
			}
		case dopEnded:
			ended = true
		default:
			err = fmt.Errorf("%w: unexpected op %d from a daemon", errDaemonFrame, m.op)
		}
	}
	if !ended {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			err = fmt.Errorf("no word from it for %v", deadAfter)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			err = errors.New("it closed the connection")
		}
		dc.lostErr = err
		close(dc.lost)
		// Unblock writers stuck on a dead network.
		_ = dc.c.Close()
	}
	dc.mu.Lock()
	ranks := make([]*remoteRank, 0, len(dc.ranks))
	for _, rr := range dc.ranks {
		ranks = append(ranks, rr)
	}
	dc.mu.Unlock()
	for _, rr := range ranks {
		if !rr.exited {
			reason := "the daemon ended the job"
			if !ended {
				reason = dc.lostErr.Error()
			}
			rr.finish(exitStatus{lost: reason})
		}
	}
	close(dc.ended)
}

// finish records the rank's exit: its output ends here.
func (rr *remoteRank) finish(st exitStatus) {
	rr.exited = true
	closeAll(rr.outW, rr.errW)
	rr.exit <- st
}

// signal asks the daemon to signal the rank's process group. A lost
// daemon is not an error: it kills its ranks itself.
func (rr *remoteRank) signal(sig syscall.Signal) error {
	if rr.dc.isLost() {
		return nil
	}
	err := rr.dc.send(&dmsg{op: dopSignal, rank: rr.rank, signal: int(sig)})
	if err != nil && rr.dc.isLost() {
		return nil
	}
	return err
}

// close ends the session: it asks the daemon to end the job, waits (a
// bounded time) for its answer and closes the connection. Idempotent.
func (dc *daemonConn) close() {
	dc.closeMu.Do(func() {
		if !dc.isLost() && dc.send(&dmsg{op: dopEnd}) == nil {
			t := time.NewTimer(endWait)
			select {
			case <-dc.ended:
			case <-t.C:
				dc.log.Warn("launcher: the daemon did not confirm the end of the job", "host", dc.host)
			}
			t.Stop()
		}
		close(dc.done)
		_ = dc.c.Close()
	})
}

// await waits for a staging reply or error from the daemon.
func (dc *daemonConn) await(ctx context.Context) (dmsg, error) {
	t := time.NewTimer(replyTimeout)
	defer t.Stop()
	select {
	case m := <-dc.ctl:
		return m, nil
	case <-dc.lost:
		return dmsg{}, fmt.Errorf("launcher: lost the daemon on host %s: %w", dc.host, dc.lostErr)
	case <-ctx.Done():
		return dmsg{}, context.Cause(ctx)
	case <-t.C:
		return dmsg{}, fmt.Errorf("launcher: the daemon on host %s did not answer within %v", dc.host, replyTimeout)
	}
}

// hostError turns an error frame of the daemon of dc into an error.
func (dc *daemonConn) hostError(m dmsg) error {
	if m.kind == errKindUsage {
		return usageErrorf(nil, "host %s: %s", dc.host, m.text)
	}
	return fmt.Errorf("launcher: host %s: %s", dc.host, m.text)
}

// stage makes sure the daemon has the executable exe (hash sum) in its
// cache, sending it if not.
func (dc *daemonConn) stage(ctx context.Context, exe []byte, sum []byte) error {
	if err := dc.send(&dmsg{op: dopExeQuery, sha: sum}); err != nil {
		return err
	}
	m, err := dc.await(ctx)
	if err != nil {
		return err
	}
	if m.op == dopError {
		return dc.hostError(m)
	}
	if m.have {
		dc.log.Debug("launcher: the daemon has the program cached", "host", dc.host)
		return nil
	}
	for off := 0; off < len(exe); off += maxExeChunk {
		end := min(off+maxExeChunk, len(exe))
		if err := dc.send(&dmsg{op: dopExeChunk, data: exe[off:end]}); err != nil {
			return err
		}
		select { // an early error (disk full) stops the upload
		case m := <-dc.ctl:
			if m.op == dopError {
				return dc.hostError(m)
			}
		default:
		}
	}
	if err := dc.send(&dmsg{op: dopExeDone, sha: sum}); err != nil {
		return err
	}
	if m, err = dc.await(ctx); err != nil {
		return err
	}
	if m.op == dopError || !m.have {
		return dc.hostError(m)
	}
	return nil
}

// readExe reads the executable at path for staging and returns it with
// its SHA-256.
func readExe(path string) (exe, sum []byte, err error) {
	exe, err = os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("launcher: read the program to stage it: %w", err)
	}
	if len(exe) > maxExeSize {
		return nil, nil, usageErrorf(nil, "program %s is larger than %d bytes; --stage cannot ship it", path, maxExeSize)
	}
	s := sha256.Sum256(exe)
	return exe, s[:], nil
}
