package launcher

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// stdinForwarder copies the job's standard input to rank 0 and can be
// stopped even while it waits for input.
type stdinForwarder struct {
	src   io.Reader
	dst   *os.File // write end of rank 0's stdin pipe; closed on exit
	wakeR int      // read end of the stop pipe, or -1 (src is not a file)
	wakeW int      // write end of the stop pipe, or -1
}

// newStdinForwarder prepares to copy src to dst. For an *os.File src it
// waits with poll(2) on src and a stop pipe, so that stop interrupts the
// wait; other readers are read directly and must return from Read.
func newStdinForwarder(src io.Reader, dst *os.File) (*stdinForwarder, error) {
	f := &stdinForwarder{src: src, dst: dst, wakeR: -1, wakeW: -1}
	if _, ok := src.(*os.File); ok {
		r, w, err := stopPipe()
		if err != nil {
			return nil, err
		}
		f.wakeR, f.wakeW = r, w
	}
	return f, nil
}

// run copies until src ends (then rank 0 sees end of file), writing to
// rank 0 fails (rank 0 exited) or stop is called. It closes dst and the
// stop pipe's read end.
func (f *stdinForwarder) run() {
	defer func() {
		// Close errors are moot: either stop already closed dst, or the
		// pipe is simply done.
		_ = f.dst.Close()
		if f.wakeR >= 0 {
			_ = unix.Close(f.wakeR)
		}
	}()
	buf := make([]byte, 32<<10)
	file, isFile := f.src.(*os.File)
	var fd int
	if isFile {
		rc, err := file.SyscallConn()
		if err != nil {
			return
		}
		if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
			return
		}
	}
	for {
		if isFile {
			fds := []unix.PollFd{
				{Fd: int32(fd), Events: unix.POLLIN},
				{Fd: int32(f.wakeR), Events: unix.POLLIN},
			}
			if _, err := unix.Poll(fds, -1); err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			if fds[1].Revents != 0 {
				return // stopped
			}
			if fds[0].Revents == 0 {
				continue
			}
		}
		n, err := f.src.Read(buf)
		if n > 0 {
			if _, werr := f.dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stop makes run return: it wakes a poll and closes dst so that a Write
// blocked on a full pipe fails. It must be called exactly once.
func (f *stdinForwarder) stop() {
	if f.wakeW >= 0 {
		// Closing the write end wakes poll with POLLHUP.
		_ = unix.Close(f.wakeW)
	}
	// A concurrent Write returns an error; a second Close by run is harmless.
	_ = f.dst.Close()
}
