package tcp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gorun-hpc/gorun/runtime/internal/sched"
)

// sock is an established connection taken out of the runtime's network
// poller. Package net registers every socket with the poller (epoll,
// edge-triggered, for reading and writing), and then every segment that
// arrives and every acknowledgement that frees send space wakes the thread
// parked in epoll_wait, even when no goroutine waits on that socket: on a
// busy two-core machine each such wake-up preempts a spinning rank, about
// two context switches per message. So once the handshake is done the
// connection's descriptor is duplicated and the net.Conn closed, which
// removes the registration; frames then move with plain non-blocking
// system calls, and a goroutine that must wait for the socket registers a
// short-lived duplicate with the poller for that wait only (see wait).
//
// Closing: the descriptor is closed once, by close, never while a write
// holds mu; readers guarantee by their own locking that nobody reads it
// after close (conn.dead, set by the reader that closes it). shutdown may be
// called at any time.
type sock struct {
	fd   int
	addr string // remote address, for errors

	mu     sync.Mutex   // held by write and close
	life   sync.RWMutex // read-held by shutdown, held by close: no shutdown of a closed (reused) descriptor
	closed bool         // guarded by mu and life: set under both

	shut atomic.Bool  // shutdown was called: waits end at once
	rdl  atomic.Int64 // read deadline, Unix nanoseconds; 0: none
	wdl  atomic.Int64 // write deadline, likewise
	iov  [2]unix.Iovec
}

// rawIOMax caps the bytes of one read or write system call. Every call is
// raw, invisible to the scheduler: the socket never blocks, so a call lasts
// as long as its copy, which this bounds to about half a millisecond here
// (the delay it can add to a stop-the-world, or to goroutines queued behind
// it). Announcing the long ones instead (syscall.Syscall) let the
// runtime's monitor hand the P to another thread in the middle of a
// message, which then had to be woken and put back: in 36 alternating
// rounds of a 1 MiB ping-pong, raw calls were faster in 28, by a median 8%.
const rawIOMax = 4 << 20

// waitSlice bounds one registered wait, so that deadlines set and shutdowns
// made while a goroutine waits take effect within it.
const waitSlice = 100 * time.Millisecond

// errDeadline is returned by reads and writes whose deadline has passed.
var errDeadline = os.ErrDeadlineExceeded

// detach takes conn's socket out of the network poller: it duplicates the
// descriptor, closes conn and returns the duplicate, non-blocking as package
// net left it. conn must not be used afterwards.
func detach(conn *net.TCPConn) (*sock, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, derr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("duplicate socket: %w", derr)
	}
	s := &sock{fd: nfd, addr: conn.RemoteAddr().String()}
	conn.Close() // unregisters the original descriptor; the socket lives on in nfd
	return s, nil
}

// read reads from the socket into b without blocking. It returns n > 0, or
// done = false when nothing is there yet, or done = true at the end of the
// stream (err io.EOF) or on an error. The caller ensures the descriptor is
// open.
func (s *sock) read(b []byte) (n int, done bool, err error) {
	for {
		r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(s.fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(min(len(b), rawIOMax)))
		switch {
		case errno == 0 && r > 0:
			return int(r), false, nil
		case errno == 0:
			return 0, true, io.EOF
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return 0, false, nil
		}
		return 0, true, errno
	}
}

// write writes all of a and then b, waiting while the send buffer is full,
// until the write deadline or a shutdown. A non-blocking writev that the
// kernel takes whole costs one system call and no scheduler work.
func (s *sock) write(a, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	for len(a)+len(b) > 0 {
		n := 0
		if len(a) > 0 {
			s.iov[n] = unix.Iovec{Base: unsafe.SliceData(a)}
			s.iov[n].SetLen(len(a))
			n++
		}
		if len(b) > 0 {
			s.iov[n] = unix.Iovec{Base: unsafe.SliceData(b)}
			s.iov[n].SetLen(min(len(b), rawIOMax)) // a is a frame header
			n++
		}
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(s.fd), uintptr(unsafe.Pointer(&s.iov[0])), uintptr(n))
		s.iov = [2]unix.Iovec{} // keep no pointer to the caller's memory
		switch errno {
		case 0:
			w := int(r)
			k := min(w, len(a))
			a, b = a[k:], b[w-k:]
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if s.spinWritable() {
				continue
			}
			if err := s.wait(true); err != nil {
				return err
			}
			continue
		}
		return errno
	}
	return nil
}

// spinWritable watches the socket for room to write, following the
// spinning policy of package mpi's blocking calls (sched.Spinner): without
// blocking, for sched.SpinTime and then yielding the CPU between looks (the
// receiver may need this core to drain), for up to sched.SpinBudget in all.
// It reports whether room came, or the socket failed or was shut down (the
// next write says which); false when the time is up, or ppoll failed: the
// caller then parks in the network poller (wait). A peer that reads keeps
// room coming every few microseconds, and parking costs a registration and
// a thread wake-up, 20–30 µs on a small VM, each time the buffer fills: a
// 4 MiB message fills it a few times. A peer that stalls costs at most
// sched.SpinBudget of CPU per write.
func (s *sock) spinWritable() bool {
	p := [1]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLOUT}}
	var sp sched.Spinner
	for {
		p[0].Revents = 0
		switch n := pollNow(p[:]); {
		case n > 0 || s.shut.Load():
			return true
		case n < 0:
			return false // wait in the poller instead
		}
		if ok, _ := sp.More(sched.Yield); !ok {
			return false
		}
	}
}

// wait blocks until the socket is readable (or, with write, writable), its
// deadline passes (errDeadline) or it is shut down. It parks the goroutine
// in the network poller on a duplicate of the descriptor, registered for
// this wait only, in slices of at most waitSlice.
func (s *sock) wait(write bool) error {
	dl := &s.rdl
	events := int16(unix.POLLIN | pollRdHup)
	if write {
		dl, events = &s.wdl, unix.POLLOUT
	}
	ready := func(fd uintptr) bool {
		p := [1]unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(p[:], 0)
		return s.shut.Load() || (err == nil && n > 0) || (err != nil && err != unix.EINTR)
	}
	for {
		if s.shut.Load() {
			return nil // the next read or write reports what shutdown did
		}
		until := time.Now().Add(waitSlice)
		if d := dl.Load(); d != 0 {
			if time.Now().UnixNano() >= d {
				return errDeadline
			}
			until = time.Unix(0, min(d, until.UnixNano()))
		}
		nfd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("duplicate socket: %w", err)
		}
		f := os.NewFile(uintptr(nfd), s.addr) // non-blocking: pollable
		rc, err := f.SyscallConn()
		if err == nil {
			_ = f.SetDeadline(until)
			if write {
				err = rc.Write(ready)
			} else {
				err = rc.Read(ready)
			}
		}
		f.Close()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue // the slice ended: look at deadline and shutdown again
		}
		return err
	}
}

// quickAckMin is the payload size from which the receiver asks the kernel
// to acknowledge every segment at once (quickAck).
const quickAckMin = 512 << 10

// setReadDeadline and setWriteDeadline bound later and current waits; the
// zero time removes the bound.
func (s *sock) setReadDeadline(t time.Time)  { s.rdl.Store(unixNano(t)) }
func (s *sock) setWriteDeadline(t time.Time) { s.wdl.Store(unixNano(t)) }

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// shutdown shuts the socket down in direction how (unix.SHUT_WR, SHUT_RDWR)
// and, for SHUT_RDWR, ends every wait on it. Safe at any time, also while a
// write waits and after close (then it does nothing).
func (s *sock) shutdown(how int) {
	if how == unix.SHUT_RDWR {
		s.shut.Store(true)
	}
	s.life.RLock()
	defer s.life.RUnlock()
	if !s.closed {
		_ = unix.Shutdown(s.fd, how)
	}
}

// close closes the descriptor, once, when no write is in progress.
func (s *sock) close() {
	s.shutdown(unix.SHUT_RDWR) // ends a write waiting for space
	s.mu.Lock()
	defer s.mu.Unlock()
	s.life.Lock()
	defer s.life.Unlock()
	if !s.closed {
		s.closed = true
		_ = unix.Close(s.fd)
	}
}
