package collectives

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readFrom copies len(dst) bytes from address addr of process pid into dst
// with process_vm_readv: one copy, by the reader, straight out of the other
// rank's buffer. The caller makes sure the remote bytes stay valid and
// unmodified until it tells the other rank it is done.
func readFrom(pid int, addr uintptr, dst []byte) error {
	for len(dst) > 0 {
		local := []unix.Iovec{{Base: &dst[0]}}
		local[0].SetLen(len(dst))
		n, err := unix.ProcessVMReadv(pid, local, []unix.RemoteIovec{{Base: addr, Len: len(dst)}}, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("collectives: read %d bytes from process %d: %w", len(dst), pid, err)
		case n <= 0:
			return fmt.Errorf("collectives: read from process %d made no progress", pid)
		}
		dst, addr = dst[n:], addr+uintptr(n)
	}
	return nil
}

// addrOf returns the address of b's first byte (0 for an empty b).
func addrOf(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}
