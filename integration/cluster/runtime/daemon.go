package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// startDaemon writes the config and starts containerd inside the holder's
// namespaces, appending its output to Dir/containerd.log, and waits until
// the CRI answers (at most 60 s).
func (r *Runtime) startDaemon(ctx context.Context) error {
	cfg := r.path("config.toml")
	if err := os.WriteFile(cfg, []byte(r.config()), 0o644); err != nil {
		return err
	}
	for _, d := range []string{"root", "state", "opt", "cdi", "runc"} {
		if err := os.MkdirAll(r.path(d), 0o711); err != nil {
			return err
		}
	}
	log, err := os.OpenFile(r.path("containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := r.Command(context.Background(), filepath.Join(r.BinDir, "containerd"), "--config", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	// containerd finds containerd-shim-runc-v2 through PATH.
	cmd.Env = append(os.Environ(), "PATH="+r.BinDir+":"+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, r.opts.Env...)
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("starting containerd: %w", err)
	}
	r.daemon, r.logFile = cmd, log
	r.daemonDone = make(chan error, 1)
	go func() { r.daemonDone <- cmd.Wait() }()
	return r.waitReady(ctx)
}

// waitReady polls `crictl info` until containerd's CRI answers.
func (r *Runtime) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for i := 0; i < 600 && time.Now().Before(deadline); i++ {
		select {
		case err := <-r.daemonDone:
			r.daemonDone <- err
			return fmt.Errorf("containerd exited (%v); log:\n%s", err, r.LogTail(40))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if _, err := os.Stat(r.Socket); err == nil {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, last = r.Crictl(c, "info")
			cancel()
			if last == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("containerd not ready after 60 s (%v); log:\n%s", last, r.LogTail(40))
}

// Stop stops containerd: SIGTERM, then SIGKILL after 15 s. Pods (shims and
// containers) keep running, as on a real node; Restart starts it again.
func (r *Runtime) Stop() error {
	if r.daemon == nil {
		return nil
	}
	defer func() { r.daemon = nil; r.logFile.Close() }()
	_ = r.daemon.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.daemonDone:
		return nil
	case <-time.After(15 * time.Second):
	}
	_ = r.daemon.Process.Kill()
	select {
	case <-r.daemonDone:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("containerd pid %d did not exit after SIGKILL", r.daemon.Process.Pid)
	}
}

// Restart stops containerd and starts it again with the same config.
func (r *Runtime) Restart(ctx context.Context) error {
	if err := r.Stop(); err != nil {
		return err
	}
	return r.startDaemon(ctx)
}

// running reports whether containerd was started and has not exited.
func (r *Runtime) running() bool {
	if r.daemon == nil {
		return false
	}
	select {
	case err := <-r.daemonDone:
		r.daemonDone <- err
		return false
	default:
		return true
	}
}

// exitedWithin reports whether containerd exits (or has exited) within d.
func (r *Runtime) exitedWithin(d time.Duration) bool {
	if r.daemon == nil {
		return true
	}
	select {
	case err := <-r.daemonDone:
		r.daemonDone <- err
		return true
	case <-time.After(d):
		return false
	}
}

// PID is containerd's process id (0 when stopped).
func (r *Runtime) PID() int {
	if r.daemon == nil {
		return 0
	}
	return r.daemon.Process.Pid
}

// Crictl runs crictl against the runtime and returns its stdout; the error
// carries stderr. It runs in the test's own namespaces (the socket is a
// file under Dir).
func (r *Runtime) Crictl(ctx context.Context, args ...string) ([]byte, error) {
	a := append([]string{"--config", r.CrictlConfig()}, args...)
	return run(ctx, filepath.Join(r.BinDir, "crictl"), a...)
}

// Ctr runs ctr against the runtime in containerd's "k8s.io" namespace
// (the CRI's) and returns its stdout.
func (r *Runtime) Ctr(ctx context.Context, args ...string) ([]byte, error) {
	a := append([]string{"--address", r.Socket, "--namespace", "k8s.io"}, args...)
	return run(ctx, filepath.Join(r.BinDir, "ctr"), a...)
}

// Import loads an image archive (image.Write's, or `docker save`'s) into
// the CRI's image store. Equivalent to: ctr -n k8s.io images import FILE
func (r *Runtime) Import(ctx context.Context, archive string) error {
	_, err := r.Ctr(ctx, "images", "import", "--snapshotter", r.opts.Snapshotter, archive)
	return err
}

// LogTail returns the last n lines of containerd's log.
func (r *Runtime) LogTail(n int) string {
	b, _ := os.ReadFile(r.path("containerd.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run executes a command and returns stdout; the error carries stderr.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "),
			err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
