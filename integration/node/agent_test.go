package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeAgent is a shell script standing in for netpol-agent: it prints its
// arguments, NODE_NAME and network namespace, then behaves as its last
// argument says.
const fakeAgent = `#!/bin/sh
echo "args: $*"
echo "node: $NODE_NAME"
echo "netns: $(readlink /proc/self/ns/net)"
for mode; do :; done
case "$mode" in
fail) echo "bad manifest" >&2; exit 3 ;;
serve) trap 'echo bye; exit 0' TERM; echo trapping TERM; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done ;;
stubborn) trap '' TERM; echo ignoring TERM; exec sleep 30 ;;
esac
`

func fakeAgentNode(t *testing.T) *Node {
	t.Helper()
	requireRoot(t)
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "netpol-agent"), []byte(fakeAgent), 0o755); err != nil {
		t.Fatal(err)
	}
	return New(t, Options{BridgeOnly: true, BinDir: bin, Name: "node-a"})
}

func netnsInode(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", fi.Sys().(*syscall.Stat_t).Ino)
}

func TestRunAgent(t *testing.T) {
	t.Parallel()
	n := fakeAgentNode(t)
	out, err := n.RunAgent("--once", "--manifests", "/x")
	if err != nil {
		t.Fatalf("RunAgent: %v\n%s", err, out)
	}
	for _, want := range []string{
		"args: --data-dir " + n.DataDir + " --once --manifests /x",
		"node: node-a",
		"netns: " + netnsInode(t, n.NetNSPath),
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = n.RunAgent("fail")
	if err == nil || !strings.Contains(string(out), "bad manifest") {
		t.Errorf("failing agent: err %v, output:\n%s", err, out)
	}
}

func TestStartAgent(t *testing.T) {
	n := fakeAgentNode(t)
	t.Parallel()
	a, err := n.StartAgent("serve")
	if err != nil {
		t.Fatal(err)
	}
	// The shell handles SIGTERM only once its trap is set, after it printed
	// its namespace: wait for the trap, not the namespace line (bounded).
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(a.Output(), "trapping TERM") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.Stop(); err != nil {
		t.Errorf("Stop: %v\n%s", err, a.Output())
	}
	if !strings.Contains(a.Output(), "bye") {
		t.Errorf("agent did not see SIGTERM:\n%s", a.Output())
	}
	if err := a.Stop(); err != errAgentStopped {
		t.Errorf("second Stop = %v, want errAgentStopped", err)
	}

	s, err := n.StartAgent("stubborn")
	if err != nil {
		t.Fatal(err)
	}
	// SIGTERM is ignored only once the trap is set: wait for it, however
	// loaded the machine (bounded).
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(s.Output(), "ignoring TERM") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := s.stop(200 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "was killed") {
		t.Errorf("stop of a stubborn agent = %v, want killed", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %v", d)
	}
}
