//go:build unix && !linux

package launcher

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// stopPipe makes a pipe whose ends are closed in exec'd children. Without
// pipe2 the flag is set after creation, under the fork lock so that no
// child is forked in between (os/exec takes it for reading).
func stopPipe() (r, w int, err error) {
	var p [2]int
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	if err := unix.Pipe(p[:]); err != nil {
		return -1, -1, err
	}
	unix.CloseOnExec(p[0])
	unix.CloseOnExec(p[1])
	return p[0], p[1], nil
}
