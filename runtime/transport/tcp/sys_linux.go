package tcp

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pollRdHup asks poll to report a peer's half-close as readable.
const pollRdHup = unix.POLLRDHUP

// zeroTimeout makes ppoll return at once.
var zeroTimeout unix.Timespec

// pollNow asks the kernel, without waiting, which of fds are ready for
// their events (or at their end, or in error), and returns how many; -1 if
// the call failed, and then every descriptor is to be read. A raw system
// call: it never blocks.
func pollNow(fds []unix.PollFd) int {
	for {
		r, _, errno := syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
			uintptr(unsafe.Pointer(&zeroTimeout)), 0, 0, 0)
		switch errno {
		case 0:
			return int(r)
		case unix.EINTR:
			continue
		}
		return -1
	}
}

// quickAck makes the kernel acknowledge the segments that arrive next at
// once. A connection that carries frames both ways looks interactive to
// Linux ("pingpong" mode), which then holds acknowledgements back to let
// them ride on the next reply; during a large payload that starves the
// sender of window and send-buffer space. On loopback a 1 MiB ping-pong
// took 155 µs a half round trip without and 123 µs with it. The mode lasts
// a few segments and comes back by itself, so small frames that follow
// still carry their acknowledgements. Failure only costs speed, so it is
// ignored. The caller ensures the descriptor is open.
func (s *sock) quickAck() {
	_ = unix.SetsockoptInt(s.fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
}
