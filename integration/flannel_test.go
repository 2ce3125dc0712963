package integration

// netpol chained after flannel: the repo's 10-policy-flannel.conflist
// (flannel -> netpol -> portmap, cniVersion 0.4.0) on three nodes. The
// flannel CNI plugin (containernetworking/plugins meta/flannel v0.9.1)
// reads each node's subnet.env, written by the harness as flanneld would
// (FLANNEL_IPMASQ=true), and delegates to bridge with host-local; flanneld
// itself is emulated by the cluster: host-gw routes, its masquerade
// (nothing inside 10.244.0.0/16 is masqueraded) and its FORWARD accept
// rules, appended after netpol's jump.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/integration/node"
)

const flannelConflist = "10-policy-flannel.conflist"

// TestFlannelConflist checks the shipped flannel conflist: libcni loads it,
// the chain is flannel -> netpol -> portmap at cniVersion 0.4.0 (flannel's
// plugin speaks up to 0.4.0), and netpol's part parses as netpol would
// parse it at that version.
func TestFlannelConflist(t *testing.T) {
	b, err := node.RepoFile(flannelConflist)
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		t.Fatalf("libcni: %v", err)
	}
	if list.CNIVersion != "0.4.0" {
		t.Errorf("cniVersion %q, want 0.4.0", list.CNIVersion)
	}
	var types []string
	for _, p := range list.Plugins {
		types = append(types, p.Network.Type)
		if p.Network.Type != "netpol" {
			continue
		}
		injected, err := libcni.InjectConf(p, map[string]any{"name": list.Name, "cniVersion": list.CNIVersion})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := conf.Parse(injected.Bytes, false)
		if err != nil {
			t.Errorf("netpol config: %v", err)
		} else if nc.DataDir != "/var/lib/netpol" {
			t.Errorf("netpol dataDir %q", nc.DataDir)
		}
	}
	if want := []string{"flannel", "netpol", "portmap"}; !slices.Equal(types, want) {
		t.Errorf("chain %v, want %v", types, want)
	}
}

// flannelHostPort: prod/c (node-3) takes TCP 80 from node-1's address:
// pod traffic to another node's address leaves the cluster CIDR, so
// flanneld's masquerade gives it the sending node's address, and that is
// what arrives at the hostPort (a pod selector cannot match it).
const flannelHostPort = `
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-from-node-1, namespace: prod}
spec:
  podSelector: {matchLabels: {pod: c}}
  ingress:
  - from:
    - ipBlock: {cidr: 198.51.100.1/32}
    ports:
    - port: 80
`

// TestFlannelChain: three nodes on the flannel chain, nine pods spread
// over them, the policies of TestMultiNodePolicies on real traffic (same
// node and across nodes), a hostPort through portmap, CHECK, and DEL.
func TestFlannelChain(t *testing.T) {
	w := newFlannelWorld(t)
	n1, n2, n3 := w.c.Nodes[0], w.c.Nodes[1], w.c.Nodes[2]

	pods := w.list(nineKeys...)
	expect(t, "flannel chain, TCP 80", pods, pods, "tcp", 80, nineTCP80...)
	expect(t, "flannel chain, UDP 80", pods, pods, "udp", 80, nineClosed...)

	// Once per direction on the flannel chain too (flanneld's FORWARD
	// accept rules come after netpol's jump).
	for _, n := range w.c.Nodes {
		if fw := chainCounters(t, n)["FORWARD"]; len(fw) < 2 || !strings.Contains(fw[0].text, "-j NETPOL-FORWARD") ||
			!strings.Contains(fw[len(fw)-1].text, "-j FLANNEL-FWD") {
			t.Errorf("%s: FORWARD is %v; want netpol's jump first, flanneld's last", n.Name, fw)
		}
	}
	zero := pathCounters{}
	probeOnePath(t, w, "flannel, same node: ops/b -> prod/b on node-2", "ops/b", "prod/b", map[*node.Node]pathCounters{
		n1: zero, n2: {bridged: 1, egress: 1, ingress: 1, ge: 1, gi: 1}, n3: zero})
	probeOnePath(t, w, "flannel, cross node: ops/b on node-2 -> prod/a on node-1", "ops/b", "prod/a", map[*node.Node]pathCounters{
		n2: {routed: 1, egress: 1, ingress: 1, ge: 1}, n1: {routed: 1, egress: 1, ingress: 1, gi: 1}, n3: zero})

	checkFlannelDelegation(t, w)

	// The hostPort of prod/c on node-3, through portmap after netpol:
	// node-3 itself always reaches its pod (node traffic); pods of node-1
	// arrive as 198.51.100.1 (flanneld's masquerade), which prod's policy
	// c-from-node-1 admits; pods of node-2 arrive as 198.51.100.2 and are
	// denied; dev/b may not send there at all.
	hp := node.Source{Name: "node-3:30080", NetNSPath: n3.NetNSPath, IP: n3.UnderlayIP}
	from := []node.Host{n3, w.pods["ops/a"], w.pods["dev/a"], w.pods["ops/b"], w.pods["dev/b"]}
	expect(t, "hostPort 30080 of prod/c", from, []node.Host{hp}, "tcp", 30080, ".", ".", ".", "X", "X")

	// CHECK through the chain (flannel, netpol, portmap).
	for _, k := range []string{"prod/a", "dev/b", "prod/c"} {
		p := w.pods[k]
		if err := p.Node().CheckPod(p); err != nil {
			t.Errorf("CHECK %s: %v", k, err)
		}
	}

	checkDelThroughFlannel(t, w)
}

// newFlannelWorld is the nine-pod world on three nodes with the flannel
// conflist and flanneld, prod/c publishing hostPort 30080, synced.
func newFlannelWorld(t *testing.T) *clusterWorld {
	cl, err := node.RepoFile(flannelConflist)
	if err != nil {
		t.Fatal(err)
	}
	nss, specs := nineWorld()
	for i := range specs {
		if specs[i].key == "prod/c" {
			specs[i].opts.CapabilityArgs = map[string]any{"portMappings": []map[string]any{
				{"hostPort": 30080, "containerPort": 80, "protocol": "tcp"}}}
		}
	}
	w := newClusterWorld(t, node.ClusterOptions{Nodes: 3, Node: node.Options{Conflist: cl}, FlannelDaemon: true}, nss, specs)
	n1 := w.c.Nodes[0]
	if !slices.ContainsFunc(n1.CNIPath, func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "flannel"))
		return err == nil
	}) {
		t.Fatalf("no flannel CNI plugin in %v (make deps installs it)", n1.CNIPath)
	}
	w.policies = ninePolicies + flannelHostPort
	w.add(80)
	w.sync(true)
	return w
}

// checkFlannelDelegation checks what flannel handed the bridge: ipMasq off
// (FLANNEL_IPMASQ=true), cniVersion 0.4.0, the node's subnet; and that no
// per-pod masquerade rule of the bridge plugin is in the nat table.
func checkFlannelDelegation(t *testing.T, w *clusterWorld) {
	t.Helper()
	for i, n := range w.c.Nodes {
		nat := execIn(t, n, "iptables-save", "-t", "nat")
		for _, s := range w.specs {
			if s.node != i {
				continue
			}
			p := w.pods[s.key]
			b, err := os.ReadFile(filepath.Join(filepath.Dir(n.SubnetEnv), "flannel", p.ContainerID))
			if err != nil {
				t.Fatalf("%s: flannel's delegate config of %s: %v", n.Name, s.key, err)
			}
			var d struct {
				CNIVersion string `json:"cniVersion"`
				Type       string `json:"type"`
				IPMasq     bool   `json:"ipMasq"`
				IPAM       struct {
					Ranges [][]struct{ Subnet string } `json:"ranges"`
				} `json:"ipam"`
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			if d.CNIVersion != "0.4.0" || d.Type != "bridge" || d.IPMasq || len(d.IPAM.Ranges) != 1 ||
				d.IPAM.Ranges[0][0].Subnet != n.Subnet {
				t.Errorf("%s: flannel delegated %s as %s", n.Name, s.key, b)
			}
			if strings.Contains(nat, "-s "+p.IP+"/32 ") {
				t.Errorf("%s: a masquerade rule for %s (%s) is in the nat table:\n%s", n.Name, s.key, p.IP, nat)
			}
		}
	}
}

// checkDelThroughFlannel: on DEL of ops/c through flannel, its delegate
// state and its entries on node-3 go at once; the other nodes drop it when
// the manifests do.
func checkDelThroughFlannel(t *testing.T, w *clusterWorld) {
	t.Helper()
	n1, n2, n3 := w.c.Nodes[0], w.c.Nodes[1], w.c.Nodes[2]
	opsC := w.pods["ops/c"]
	if err := n3.DelPod(opsC); err != nil {
		t.Fatalf("DEL ops/c: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(n3.SubnetEnv), "flannel", opsC.ContainerID)); !os.IsNotExist(err) {
		t.Errorf("flannel's delegate config of ops/c survived DEL: %v", err)
	}
	if got := setKindsHolding(ipsetMembers(t, n3), opsC.IP); len(got) != 0 {
		t.Errorf("node-3 sets still hold ops/c (%s) after DEL: %v", opsC.IP, got)
	}
	delete(w.pods, "ops/c")
	w.specs = slices.DeleteFunc(w.specs, func(s placedPod) bool { return s.key == "ops/c" })
	w.sync(true)
	for _, n := range []*node.Node{n1, n2, n3} {
		if got := setKindsHolding(ipsetMembers(t, n), opsC.IP); len(got) != 0 {
			t.Errorf("%s: sets still hold ops/c (%s) after DEL and sync: %v", n.Name, opsC.IP, got)
		}
	}
	rest := w.list("prod/a", "dev/b", "ops/a")
	expect(t, "after ops/c is gone", rest, rest, "tcp", 80,
		". . .",
		"X . X", // dev/b: its only allowed peer is gone
		". . .",
	)
}
