package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Bounds of an agent's shutdown: SIGTERM, then SIGKILL.
const (
	AgentStopTimeout = 10 * time.Second
	agentKillTimeout = 5 * time.Second
	agentRunTimeout  = 60 * time.Second
)

var errAgentStopped = errors.New("agent already stopped")

// Agent is a long-running netpol-agent inside the node namespace.
type Agent struct {
	PID int

	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	waitErr error

	mu      sync.Mutex
	stopped bool
}

// AgentPath is the netpol-agent binary the node runs.
func (n *Node) AgentPath() string { return filepath.Join(n.BinDir, "netpol-agent") }

// PluginPath is the netpol CNI plugin binary the node's chain runs.
func (n *Node) PluginPath() string { return filepath.Join(n.BinDir, "netpol") }

// RunAgent runs netpol-agent to completion inside the node namespace with
// `--data-dir <node DataDir>` prepended to args and NODE_NAME set to the
// node name, bounded by 60 s. It returns stdout and stderr, interleaved.
// Equivalent to: NODE_NAME=N ip netns exec NS netpol-agent --data-dir D args...
func (n *Node) RunAgent(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), agentRunTimeout)
	defer cancel()
	return n.RunAgentContext(ctx, args...)
}

// RunAgentContext is RunAgent bounded by ctx instead.
func (n *Node) RunAgentContext(ctx context.Context, args ...string) ([]byte, error) {
	cmd := n.agentCmd(ctx, args)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("netpol-agent %v: %w", args, err)
	}
	return out.Bytes(), err
}

// StartAgent starts a long-running netpol-agent like RunAgent does. It is
// stopped on Close if the test has not stopped it.
func (n *Node) StartAgent(args ...string) (*Agent, error) {
	cmd := n.agentCmd(context.Background(), args)
	a := &Agent{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = a.out, a.out
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("node is closed")
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start netpol-agent: %w", err)
	}
	a.PID = cmd.Process.Pid
	go func() {
		a.waitErr = cmd.Wait()
		close(a.done)
	}()
	n.agents = append(n.agents, a)
	return a, nil
}

func (n *Node) agentCmd(ctx context.Context, args []string) *exec.Cmd {
	full := append([]string{"netns", "exec", n.NetNS, n.AgentPath(), "--data-dir", n.DataDir}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Env = append(append(os.Environ(), "NODE_NAME="+n.Name), n.AgentEnv...)
	cmd.WaitDelay = time.Second
	return cmd
}

// Stop sends SIGTERM, waits up to AgentStopTimeout, then sends SIGKILL.
// It returns the agent's exit error (nil for exit status 0), or an error
// when it had to be killed. A second Stop returns errAgentStopped.
func (a *Agent) Stop() error { return a.stop(AgentStopTimeout) }

func (a *Agent) stop(grace time.Duration) error {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return errAgentStopped
	}
	a.stopped = true
	a.mu.Unlock()
	select {
	case <-a.done:
		return a.waitErr
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.Wait(grace); err == nil || !errors.Is(err, errWaitTimeout) {
		return err
	}
	_ = a.cmd.Process.Kill()
	if err := a.Wait(agentKillTimeout); errors.Is(err, errWaitTimeout) {
		return fmt.Errorf("pid %d survived SIGKILL for %v", a.PID, agentKillTimeout)
	}
	return fmt.Errorf("pid %d ignored SIGTERM for %v and was killed", a.PID, grace)
}

// Signal sends sig to the agent (e.g. SIGKILL to test crash recovery).
func (a *Agent) Signal(sig os.Signal) error { return a.cmd.Process.Signal(sig) }

var errWaitTimeout = errors.New("agent still running")

// Wait waits up to timeout for the agent to exit and returns its exit
// error.
func (a *Agent) Wait(timeout time.Duration) error {
	select {
	case <-a.done:
		return a.waitErr
	case <-time.After(timeout):
		return fmt.Errorf("pid %d after %v: %w", a.PID, timeout, errWaitTimeout)
	}
}

// Exited is closed when the agent process has exited.
func (a *Agent) Exited() <-chan struct{} { return a.done }

// Output returns everything the agent wrote to stdout and stderr so far.
func (a *Agent) Output() string { return string(a.out.Bytes()) }

// syncBuffer is a bytes.Buffer safe for a process writer and test readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
