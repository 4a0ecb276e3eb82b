//go:build unix && !linux

package serve

import "syscall"

// sysProcAttr puts a child in a process group of its own. Outside Linux
// there is no parent-death signal: a supervisor killed by kill -9 leaves
// its children running, and a new supervisor starts new ones beside them.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
