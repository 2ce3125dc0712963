package integration

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netpol/netpol/integration/node"
)

// linkLocal returns the fe80:: address of the pod's eth0.
func linkLocal(t *testing.T, p *node.Pod) string {
	t.Helper()
	for i := 0; i < 50; i++ {
		out, err := exec.Command("nsenter", "--net="+p.NetNSPath, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr in %s: %v: %s", p.Label(), err, out)
		}
		if f := strings.Fields(string(out)); len(f) > 3 && !strings.Contains(string(out), "tentative") {
			return strings.Split(f[3], "/")[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pod %s: no usable link-local address", p.Label())
	return ""
}

// dialLinkLocal connects from pod from to addr%eth0:port over TCP.
func dialLinkLocal(from *node.Pod, addr string, port int) error {
	return ns.WithNetNSPath(from.NetNSPath, func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr+"%eth0", fmt.Sprint(port)), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// TestIPv6LinkLocalUnderIsolation: every pod's eth0 has an IPv6 link-local
// address, which the bridge carries between pods but which is in no pod's
// status and so in no set. An isolated pod must not be reachable at it:
// netpol drops pod traffic to or from link-local addresses (neighbour
// discovery aside). Before that rule, "other" reached the isolated db at
// its fe80:: address while its global address was denied.
func TestIPv6LinkLocalUnderIsolation(t *testing.T) {
	n := newNode(t, node.Options{Family: node.IPv6})
	dir := t.TempDir()
	known := map[string]string{"default/db": "app=db", "default/web": "app=web", "default/other": ""}
	writeManifest(t, dir, "10-pods.yaml", podsYAML(known))
	writeManifest(t, dir, "20-policies.yaml", isolatedDBPolicies)
	syncOnce(t, n, dir)
	pods := addServingPods(t, n, "default/db", "default/web", "default/other")
	db, web, other := pods[0], pods[1], pods[2]
	if node.Probe(other, db.IP6, "tcp", servePort, time.Second) {
		t.Errorf("other -> db %s:%d allowed; the policy admits web only", db.IP6, servePort)
	}
	if !node.Probe(web, db.IP6, "tcp", servePort, 2*time.Second) {
		t.Errorf("web -> db %s:%d denied; the policy admits it", db.IP6, servePort)
	}
	ll := linkLocal(t, db)
	for _, from := range []*node.Pod{other, web} {
		if err := dialLinkLocal(from, ll, servePort); err == nil {
			t.Errorf("%s reached the isolated db at its link-local address %s", from.Label(), ll)
		}
	}
}
