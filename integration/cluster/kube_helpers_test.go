package cluster_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/cluster/kube"
)

// requireCluster skips (or, with NETPOL_REQUIRE_CLUSTER=1, fails) a test
// whose dependency is missing.
func requireCluster(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("NETPOL_REQUIRE_CLUSTER") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// repoRoot is the netpol repository holding this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// k8sBin is the dir of the Kubernetes programs: $NETPOL_K8S_BIN or the
// repository's .cache/k8s (hack/k8s-build.sh); each named program must be
// there.
func k8sBin(t *testing.T, names ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		requireCluster(t, "cluster tests need root (network and mount namespaces)")
	}
	dir := os.Getenv("NETPOL_K8S_BIN")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), ".cache", "k8s")
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			requireCluster(t, "%s missing (run hack/k8s-build.sh %s): %v", n, dir, err)
		}
	}
	return dir
}

// nodeNet is a node's network namespace and the namespace at the other end
// of its veth: both made by the test, never the root namespace.
type nodeNet struct {
	Name   string // the node's name, also the namespace's
	NS     string // /run/netns/NAME
	Peer   string // the peer namespace's name
	NodeIP string
}

// newNodeNet creates the node namespace (lo up) and a veth pair eth0 (node,
// 10.200.0.2/24, default route via the peer) <-> eth0 (peer, 10.200.0.1/24).
// Equivalent to: ip netns add; ip link add ... type veth peer ...; ip addr; ip route
func newNodeNet(t *testing.T) *nodeNet {
	t.Helper()
	suffix := randomHex(t, 3)
	n := &nodeNet{Name: "npk-" + suffix, Peer: "npk-" + suffix + "-gw", NodeIP: "10.200.0.2"}
	n.NS = "/run/netns/" + n.Name
	for _, ns := range []string{n.Name, n.Peer} {
		ns := ns
		mustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = runCmd("ip", "netns", "delete", ns) })
		mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	mustRun(t, "ip", "-n", n.Name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", n.Peer)
	mustRun(t, "ip", "-n", n.Name, "addr", "add", n.NodeIP+"/24", "dev", "eth0")
	mustRun(t, "ip", "-n", n.Peer, "addr", "add", "10.200.0.1/24", "dev", "eth0")
	mustRun(t, "ip", "-n", n.Name, "link", "set", "eth0", "up")
	mustRun(t, "ip", "-n", n.Peer, "link", "set", "eth0", "up")
	mustRun(t, "ip", "-n", n.Name, "route", "add", "default", "via", "10.200.0.1")
	return n
}

// startControlPlane starts etcd and the control plane in n, stopped at
// cleanup (their logs' tails printed if the test failed).
func startControlPlane(t *testing.T, bin string, n *nodeNet, mountNS, runtimeEndpoint, podCIDR string) *kube.Cluster {
	t.Helper()
	dir := t.TempDir()
	c, err := kube.StartControlPlane(kube.Config{
		Dir: dir, Bin: bin, NS: kube.Namespaces{Net: n.NS, Mount: mountNS},
		NodeName: n.Name, NodeIP: n.NodeIP, PodCIDR: podCIDR, RuntimeEndpoint: runtimeEndpoint,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Dump())
		}
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func runCmd(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
