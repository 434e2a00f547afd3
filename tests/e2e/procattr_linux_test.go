package e2e

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the broker if the test process dies
// (a go test timeout, ^C), so that no broker is left running.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
