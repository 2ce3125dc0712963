package cluster_test

// Tests of netpol driven by a real container runtime: containerd 2.x's CRI
// plugin runs pod sandboxes (crictl runp) on a node namespace and calls the
// shipped CNI chain (bridge → netpol → portmap) itself.

import (
	"net"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// TestRuntimeRunsPod: containerd creates a pod sandbox from our pause
// image; the chain gives it an IP in the node's subnet, netpol records
// it, and the node reaches a server inside the pod.
func TestRuntimeRunsPod(t *testing.T) {
	e := newRuntimeEnv(t, runtimeOptions{})
	p := e.runPod(t, "default", "smoke", map[string]string{"app": "smoke"})
	_, subnet, _ := net.ParseCIDR(e.node.Subnet)
	if ip := net.ParseIP(p.IP); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("pod IP %q not in the node's subnet %s", p.IP, e.node.Subnet)
	}
	srv, err := node.Serve(p.NetNS, p.IP, 8080)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !node.Probe(e.node, p.IP, "tcp", 8080, 2*time.Second) {
		t.Fatalf("node cannot reach pod %s at %s:8080", p.ID, p.IP)
	}
	for _, c := range e.calls.Calls(t) {
		t.Logf("CNI %s %s cniVersion=%s CNI_ARGS=%s", c.Plugin, c.Command, c.Version, c.Args)
	}
}
