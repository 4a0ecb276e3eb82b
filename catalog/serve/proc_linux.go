package serve

import "syscall"

// sysProcAttr puts a child in a process group of its own (a terminal's
// Ctrl-C reaches the supervisor, which stops children in order) and has
// the kernel kill it when the supervisor dies, even by kill -9.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
