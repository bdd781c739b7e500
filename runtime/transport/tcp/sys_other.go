//go:build unix && !linux

package tcp

import "golang.org/x/sys/unix"

// pollRdHup: no POLLRDHUP here; a peer's half-close shows as readable
// (a read returns end of file) all the same.
const pollRdHup = 0

// pollNow asks the kernel, without waiting, which of fds are ready for
// their events (or at their end, or in error), and returns how many; -1 if
// the call failed, and then every descriptor is to be read.
func pollNow(fds []unix.PollFd) int {
	for {
		n, err := unix.Poll(fds, 0)
		switch err {
		case nil:
			return n
		case unix.EINTR:
			continue
		}
		return -1
	}
}

// quickAck does nothing: TCP_QUICKACK is Linux's (see sys_linux.go).
func (s *sock) quickAck() {}
