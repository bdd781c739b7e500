//go:build unix && !linux

package launcher

import "syscall"

// sysProcAttr puts a rank in its own process group (so the terminal's
// Ctrl-C reaches only gorun and the job can signal the rank's children).
// There is no parent-death signal outside Linux.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
