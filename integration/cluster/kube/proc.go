package kube

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stopTimeout bounds how long a process gets between SIGTERM and SIGKILL.
const stopTimeout = 10 * time.Second

// Process is one program of the cluster, started inside the node's
// namespaces through nsenter (which execs it: the PID is the program's),
// its output in LOG.
type Process struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Namespaces says where a process runs: the node's network namespace
// (a path such as /run/netns/NAME) and, for the kubelet and kube-proxy,
// the runtime's private mount namespace (/proc/PID/ns/mnt; empty: the
// test's own).
type Namespaces struct {
	Net   string
	Mount string
}

// start runs bin with args in ns, output appended to logDir/NAME.log.
// Equivalent to: nsenter --net=NET [--mount=MNT] -- BIN ARGS... >>LOG 2>&1
func start(name string, ns Namespaces, logDir, bin string, args ...string) (*Process, error) {
	if ns.Net == "" {
		return nil, fmt.Errorf("%s: refusing to start outside a network namespace", name)
	}
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	enter := []string{"--net=" + ns.Net}
	if ns.Mount != "" {
		enter = append(enter, "--mount="+ns.Mount)
	}
	cmd := exec.Command("nsenter", append(append(enter, "--", bin), args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// its own process group: a signal to the test's group never reaches it
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// PID is the program's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process (by PID), then SIGKILL after
// stopTimeout, and waits for it.
func (p *Process) Stop() error {
	if exited, _ := p.Exited(); exited {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.PID())
	}
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// stopAll stops processes in reverse order and joins their errors.
func stopAll(ps []*Process) error {
	var errs []error
	for i := len(ps) - 1; i >= 0; i-- {
		if err := ps[i].Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tails renders the last n lines of every process's log.
func tails(ps []*Process, n int) string {
	var b strings.Builder
	for _, p := range ps {
		exited, err := p.Exited()
		state := "running"
		if exited {
			state = fmt.Sprintf("exited: %v", err)
		}
		fmt.Fprintf(&b, "==== %s (pid %d, %s) %s\n%s\n", p.Name, p.PID(), state, p.Log, p.Tail(n))
	}
	return b.String()
}
