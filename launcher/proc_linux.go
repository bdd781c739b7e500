package launcher

import "syscall"

// sysProcAttr puts a rank in its own process group (so the terminal's
// Ctrl-C reaches only gorun and the job can signal the rank's children) and
// has the kernel SIGKILL it if the thread that forked it exits, which
// happens when gorun dies (see job.spawnAll for why it is the whole
// process).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
