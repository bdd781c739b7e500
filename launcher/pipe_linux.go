package launcher

import "golang.org/x/sys/unix"

// stopPipe makes a pipe whose ends are closed in exec'd children.
func stopPipe() (r, w int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return -1, -1, err
	}
	return p[0], p[1], nil
}
