package kube

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialIn returns a dialer whose sockets live in the network namespace at
// nsPath: the test process stays in its own namespace, and only the
// socket is created, on a locked thread, after entering nsPath (a socket
// keeps the namespace it was created in). This is how the test reaches
// the API server and the pods without any link into the root namespace.
func DialIn(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := doIn(nsPath, func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
}

// doIn runs fn on a thread that has entered the network namespace at
// nsPath, then returns the thread to its own namespace. A thread that
// cannot return stays locked, so the Go runtime discards it.
func doIn(nsPath string, fn func() error) error {
	target, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", nsPath, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer own.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %s: %w", nsPath, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("leaving network namespace %s: %w", nsPath, err) // thread stays locked: discarded
	}
	runtime.UnlockOSThread()
	return fnErr
}
