package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/policy"
)

// policyVersion is the version netpol reports for policy key of the
// manifests in content (a content hash), computed as the agent does.
func policyVersion(t *testing.T, nodeName, content, key string) string {
	t.Helper()
	dir := t.TempDir()
	writeManifest(t, dir, "p.yaml", content)
	snap, err := manifest.Load(dir, nodeName)
	if err != nil {
		t.Fatal(err)
	}
	for i := range snap.Policies {
		if np := &snap.Policies[i]; np.Namespace+"/"+np.Name == key {
			return policy.Version(np)
		}
	}
	t.Fatalf("no policy %s in the manifests", key)
	return ""
}

// startAgentCmd starts `netpol-agent --data-dir D args...` in the node
// namespace; done receives its exit code and output when it ends.
func startAgentCmd(t *testing.T, n *node.Node, args ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	full := append([]string{"netns", "exec", n.NetNS, n.AgentPath(), "--data-dir", n.DataDir}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Env = append(os.Environ(), "NODE_NAME="+n.Name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		defer cancel()
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		done <- fmt.Sprintf("exit %d: %s", code, out.String())
	}()
	return done
}

// TestWaitReturnsAfterKernelCommit: `wait` started before the agent sees a
// changed policy returns only once the kernel holds the new version's
// rules (iptables-save already has them when it returns); `status` shows
// the version in force; waiting for a version that never comes times out
// with exit 1 and says what is in force.
func TestWaitReturnsAfterKernelCommit(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{"default/web": "app=web", "default/db": "app=db"}))
	addServingPods(t, n, "default/web", "default/db")
	first := dbPolicyYAML("default")
	writeManifest(t, dir, "20-policy.yaml", first)
	a := startAgent(t, n, dir)
	defer a.Stop()
	const key = "default/db-from-web"
	v1 := policyVersion(t, n.Name, first, key)
	if out, errOut, code := runAgentSplit(t, n, "wait", "--policy", key, "--version", v1, "--timeout", "10s"); code != 0 {
		t.Fatalf("wait for the first version: exit %d\n%s%s\n%s", code, out, errOut, a.Output())
	}
	out, _, code := runAgentSplit(t, n, "status")
	if code != 0 || !strings.Contains(out, key) || !strings.Contains(out, v1) {
		t.Fatalf("status (exit %d) does not show %s at %s:\n%s", code, key, v1, out)
	}
	t.Logf("status:\n%s", out)

	second := strings.Replace(first, fmt.Sprintf("port: %d", servePort), "port: 8443", 1)
	v2 := policyVersion(t, n.Name, second, key)
	if v2 == v1 {
		t.Fatal("the changed policy has the same version")
	}
	if strings.Contains(iptablesSave(t, n), "--dport 8443") {
		t.Fatal("port 8443 is in the kernel before the change")
	}
	waiting := startAgentCmd(t, n, "wait", "--policy", key, "--version", v2, "--timeout", "30s")
	writeManifest(t, dir, "20-policy.yaml", second)
	res := <-waiting
	save := iptablesSave(t, n) // at once: the kernel must hold it already
	if !strings.HasPrefix(res, "exit 0:") {
		t.Fatalf("wait for the changed version: %s\n%s", res, a.Output())
	}
	if !strings.Contains(save, "--dport 8443") {
		t.Errorf("wait returned (%s) before the kernel held the new rules:\n%s", res, save)
	}

	_, errOut, code := runAgentSplit(t, n, "wait", "--policy", key, "--version", "sha256:0000000000000000", "--timeout", "300ms")
	if code != 1 || !strings.Contains(errOut, "timed out") || !strings.Contains(errOut, v2+" is in force") {
		t.Errorf("wait for a version that never comes: exit %d, %q", code, errOut)
	}
	_, errOut, code = runAgentSplit(t, n, "wait", "--policy", "default/none", "--timeout", "300ms")
	if code != 1 || !strings.Contains(errOut, "not in force") {
		t.Errorf("wait for a policy that does not exist: exit %d, %q", code, errOut)
	}
}
