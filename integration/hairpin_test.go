package integration

import (
	"net"
	"strconv"
	"testing"

	"github.com/netpol/netpol/integration/node"
)

// hairpinService is a made-up Service address per family, DNATed to a pod
// in the node namespace as kube-proxy does.
var hairpinService = map[node.Family]string{node.IPv4: "10.96.0.10", node.IPv6: "fd00:10:96::a"}

// TestHairpinThroughService: a pod that reaches itself through a Service
// (kube-proxy's DNAT back to its own address, hairpinned on its bridge port,
// masqueraded as kube-proxy does for an endpoint that is the client) crosses
// FORWARD with source = destination. A pod's traffic to itself is never
// blocked, even when a deny-all ingress policy isolates it; another pod
// through the same Service is still denied. It runs on an IPv4 node
// (iptables) and on an IPv6-only one (ip6tables, the 18-instruction program).
func TestHairpinThroughService(t *testing.T) {
	for _, fam := range []node.Family{node.IPv4, node.IPv6} {
		t.Run(string(fam), func(t *testing.T) { testHairpin(t, fam) })
	}
}

func testHairpin(t *testing.T, fam node.Family) {
	n := newNode(t, node.Options{Family: fam})
	ipt, svc := "iptables", hairpinService[fam]
	if fam == node.IPv6 {
		ipt = "ip6tables"
	}
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{"default/db": "app=db", "default/other": ""}))
	pods := addServingPods(t, n, "default/db", "default/other")
	db, other := pods[0], pods[1]
	syncOnce(t, n, dir)
	// kube-proxy's rules for a Service 10.96.0.10:80 whose one endpoint is db.
	execIn(t, n, ipt, "-w", "-t", "nat", "-A", "PREROUTING", "-d", svc, "-p", "tcp", "--dport", "80",
		"-j", "DNAT", "--to-destination", net.JoinHostPort(db.Addr(), strconv.Itoa(servePort)))
	// First: the bridge plugin's own ipMasq chain ACCEPTs pod-to-pod traffic.
	execIn(t, n, ipt, "-w", "-t", "nat", "-I", "POSTROUTING", "1", "-s", db.Addr(), "-d", db.Addr(), "-j", "MASQUERADE")
	for _, p := range pods {
		if err := node.ProbeOnce(p, svc, "tcp", 80, 0); err != nil {
			t.Fatalf("without a policy, %s cannot reach the Service: %v\n%s", p.Label(), err, n.Dump())
		}
	}

	writeManifest(t, dir, "20-deny.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: default}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
`)
	syncOnce(t, n, dir)
	if err := node.ProbeOnce(db, svc, "tcp", 80, 0); err != nil {
		t.Errorf("isolated db cannot reach itself through the Service: %v\n%s", err, enforcedRules(t, n))
	}
	if node.Probe(other, svc, "tcp", 80, denyTimeout) {
		t.Errorf("other reaches the isolated db through the Service")
	}
	if node.Probe(other, db.Addr(), "tcp", servePort, denyTimeout) {
		t.Errorf("other reaches the isolated db directly")
	}
}
