package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill a server process when the test binary
// dies (a test timeout, a crash), so that none outlives it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
