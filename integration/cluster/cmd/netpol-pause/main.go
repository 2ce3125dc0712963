// Command netpol-pause is the pod sandbox ("pause") process of the images
// built here: it holds the pod's namespaces, reaps the zombies it inherits
// as PID 1 of a shared PID namespace, and exits 0 on SIGTERM or SIGINT.
// It is built static and is the only file of localhost/netpol-pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(run()) }

func run() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return 0
		}
		reap()
	}
	return 0
}

// reap collects every exited child without blocking.
func reap() {
	for i := 0; i < 1024; i++ {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
