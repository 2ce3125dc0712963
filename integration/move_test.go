package integration

// A pod that moves from one node to another with its address.

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// TestMultiNodePodMove: prod/m runs on node-1 with a pinned address, is
// deleted there (CNI DEL) and created with the same address on node-2
// (CNI ADD); the manifests then say so and every agent syncs. Neither node
// keeps anything of the old placement: each node's sets and rules are
// exactly what it compiles from scratch, and traffic follows the pod. In
// order "del-first" node-1's DEL comes before the agents hear of the
// move (the usual kubelet order); in "agents-first" the agents learn that
// prod/m is on node-2 while node-1 still holds its attachment (a slow or
// partitioned kubelet, a force-deleted pod).
func TestMultiNodePodMove(t *testing.T) {
	for _, order := range []string{"del-first", "agents-first"} {
		t.Run(order, func(t *testing.T) { testPodMove(t, order == "agents-first") })
	}
}

func testPodMove(t *testing.T, agentsFirst bool) {
	m := newMoveWorld(t)
	n1, n2, n3 := m.c.Nodes[0], m.c.Nodes[1], m.c.Nodes[2]
	pods := m.list(moveKeys...)
	expect(t, "prod/m on node-1", pods, pods, "tcp", 80, moveTable...)
	m.holds("before the move", map[*node.Node][]string{n1: {"NETPOL4-GE", "NETPOL4-GI", "NETPOL4-ISO", "NETPOL4-ISO"}, n2: nil, n3: {"NETPOL4-P"}})
	m.rulesOn("before the move", n1)
	before := m.path()
	t.Logf("ops/b -> prod/m on node-1: node-1 %s; node-2 %s", before[n1], before[n2])
	if before[n1].routed != 1 || before[n2].routed != 1 || before[n1].bridged+before[n2].bridged != 0 {
		t.Errorf("before the move, ops/b -> prod/m should be routed once on node-2 and node-1: node-1 %s; node-2 %s", before[n1], before[n2])
	}

	m.move(agentsFirst)

	pods = m.list(moveKeys...)
	expect(t, "prod/m moved to node-2", pods, pods, "tcp", 80, moveTable...)
	m.holds("after the move", map[*node.Node][]string{n1: nil, n2: {"NETPOL4-GE", "NETPOL4-GI", "NETPOL4-ISO", "NETPOL4-ISO"}, n3: {"NETPOL4-P"}})
	m.rulesOn("after the move", n2)
	after := m.path()
	t.Logf("ops/b -> prod/m on node-2: node-1 %s; node-2 %s", after[n1], after[n2])
	// Same node now, but from cni0 to cni1: routed, once, on node-2 alone.
	if after[n2].routed != 1 || after[n2].bridged != 0 || after[n2].gi != 1 || after[n1].forward != 0 {
		t.Errorf("after the move, ops/b -> prod/m should be routed once on node-2 (into prod's ingress group once) and never reach node-1: node-1 %s; node-2 %s", after[n1], after[n2])
	}
	for _, n := range []*node.Node{n1, n2} {
		m.sameAsFresh(n)
	}
}

// moveWorld is the cluster of the move test, prod/m on node-1.
type moveWorld struct {
	*clusterWorld
	t *testing.T
}

// newMoveWorld creates the cluster with prod/m on node-1 at moveIP, routed
// there, and syncs every agent.
func newMoveWorld(t *testing.T) *moveWorld {
	nss := map[string]map[string]string{"prod": {"team": "prod"}, "dev": {"team": "dev"}, "ops": {"team": "ops"}}
	specs := []placedPod{
		{key: "prod/a", labels: map[string]string{"pod": "a"}, node: 0},
		{key: "dev/a", labels: map[string]string{"pod": "a"}, node: 0},
		{key: "ops/b", labels: map[string]string{"pod": "b"}, node: 1},
		{key: "dev/b", labels: map[string]string{"pod": "b"}, node: 1},
		{key: "ops/c", labels: map[string]string{"pod": "c"}, node: 2},
		{key: "prod/m", labels: map[string]string{"pod": "m"}, node: 0,
			opts: node.PodOptions{IP: moveIP, Bridge: moveBridge, Subnet: moveRange}},
	}
	w := newClusterWorld(t, node.ClusterOptions{Nodes: 3}, nss, specs)
	w.policies = movePolicies
	w.add(80)
	if got := w.pods["prod/m"].IP; got != moveIP {
		t.Fatalf("prod/m got %s, want the pinned %s", got, moveIP)
	}
	if err := w.c.RoutePod(moveIP, w.c.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	w.sync(true)
	return &moveWorld{clusterWorld: w, t: t}
}

// holds checks the kinds of sets holding m's address on each node.
func (m *moveWorld) holds(when string, want map[*node.Node][]string) {
	m.t.Helper()
	for _, n := range m.c.Nodes {
		if got := setKindsHolding(ipsetMembers(m.t, n), moveIP); !slices.Equal(got, want[n]) {
			m.t.Errorf("%s: %s: sets holding %s: %v, want %v", when, n.Name, moveIP, got, want[n])
		}
	}
}

// rulesOn checks that the rules of prod/m's egress policy (which selects m
// alone) are installed on node on, and on no other.
func (m *moveWorld) rulesOn(when string, on *node.Node) {
	m.t.Helper()
	for _, n := range m.c.Nodes {
		got := rulesMentioning(m.t, n, "prod/m-egress")
		if (len(got) > 0) != (n == on) {
			m.t.Errorf("%s: %s: rules of prod/m-egress present=%v, want %v:\n%s", when, n.Name, len(got) > 0, n == on, strings.Join(got, "\n"))
		}
	}
}

// path zeroes the counters, connects ops/b (node-2) to m, and returns
// which path chains each node counted.
func (m *moveWorld) path() map[*node.Node]pathCounters {
	m.t.Helper()
	for _, n := range m.c.Nodes {
		execIn(m.t, n, "iptables", "-w", "5", "-Z")
	}
	if err := node.ProbeOnce(m.pods["ops/b"], moveIP, "tcp", 80, 2*time.Second); err != nil {
		m.t.Fatalf("ops/b -> prod/m: %v", err)
	}
	out := map[*node.Node]pathCounters{}
	for _, n := range m.c.Nodes {
		out[n] = readPath(m.t, n)
	}
	return out
}

// move runs CNI DEL of prod/m on node-1 and CNI ADD with the same address
// on node-2, routes the address there and syncs every agent. With
// agentsFirst the agents learn of the move before node-1's DEL.
func (m *moveWorld) move(agentsFirst bool) {
	t := m.t
	t.Helper()
	n1, n2 := m.c.Nodes[0], m.c.Nodes[1]
	old := m.pods["prod/m"]
	mover := &m.specs[len(m.specs)-1]
	if agentsFirst {
		// The API says prod/m is on node-2, with no IP yet; node-1 still
		// has the attachment, now of a pod it does not run: it fails
		// closed for that address until the DEL.
		mover.node = 1
		delete(m.pods, "prod/m")
		m.sync(true)
		t.Logf("agents know of the move, node-1 has not run DEL: node-1 sets holding %s: %v",
			moveIP, setKindsHolding(ipsetMembers(t, n1), moveIP))
	}
	if err := n1.DelPod(old); err != nil {
		t.Fatalf("DEL prod/m on node-1: %v", err)
	}
	if recs := podRecords(t, n1); slices.ContainsFunc(recs, func(r string) bool { return strings.HasPrefix(r, old.ContainerID) }) {
		t.Errorf("node-1 still has a record of prod/m after DEL: %v", recs)
	}
	if got := setKindsHolding(ipsetMembers(t, n1), moveIP); len(got) != 0 {
		t.Errorf("after DEL, before any sync: node-1 sets still hold %s: %v", moveIP, got)
	}
	mover.node = 1
	moved := m.addOne(*mover, 80)
	if moved.IP != moveIP {
		t.Fatalf("prod/m on node-2 got %s, want the pinned %s", moved.IP, moveIP)
	}
	if err := m.c.RoutePod(moveIP, n2); err != nil {
		t.Fatal(err)
	}
	m.sync(true)
}

// sameAsFresh checks that no stale state is left on n: its kernel state
// equals what the agent installs on a node wiped clean (uninstall, then
// sync from the same manifests). The node's CNI records are kept across the
// wipe: a local pod's address is what CNI ADD recorded, never its status IP.
func (m *moveWorld) sameAsFresh(n *node.Node) {
	t := m.t
	t.Helper()
	got := kernelState(t, n)
	records := filepath.Join(n.DataDir, "pods")
	saved := filepath.Join(t.TempDir(), "pods")
	if err := os.Rename(records, saved); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if out, err := n.RunAgent("--uninstall"); err != nil {
		t.Fatalf("%s: uninstall: %v\n%s", n.Name, err, out)
	}
	if err := os.Rename(saved, records); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if out, err := n.RunAgent("--manifests", m.dir, "--once"); err != nil {
		t.Fatalf("%s: sync after uninstall: %v\n%s", n.Name, err, out)
	}
	if fresh := kernelState(t, n); got != fresh {
		t.Errorf("%s after the move differs from a fresh sync:\nafter the move:\n%s\nfresh:\n%s", n.Name, got, fresh)
	}
}

// The pod that moves keeps its address: it lives on a second network of
// the nodes (bridge moveBridge, host-local on moveRange, gateway .1),
// outside every node's own subnet and routed per address
// (Cluster.RoutePod), as an IPAM with movable addresses would do; its
// address is pinned with CNI_ARGS IP=, which host-local honours. (It
// cannot share the node's bridge: the bridge plugin gives a bridge one
// IPv4 gateway, and refuses a second subnet on it.)
const (
	moveBridge = "cni1"
	moveRange  = "10.244.250.0/24"
	moveIP     = "10.244.250.10"
)

// movePolicies: prod/m (the pod that moves) is isolated for ingress
// (only ops may reach prod pods, on TCP 80) and for egress (only to ops);
// ops/c (node-3) takes ingress from prod/m alone, so node-3 holds m's
// address as a peer.
const movePolicies = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-ops, namespace: prod}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: ops}}
    ports:
    - port: 80
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: m-egress, namespace: prod}
spec:
  podSelector: {matchLabels: {pod: m}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {team: ops}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-from-m, namespace: ops}
spec:
  podSelector: {matchLabels: {pod: c}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: prod}}
      podSelector: {matchLabels: {pod: m}}
`

// moveKeys is the table order of the move test.
var moveKeys = []string{"prod/a", "dev/a", "ops/b", "dev/b", "ops/c", "prod/m"}

// moveTable is TCP 80 of movePolicies, wherever prod/m runs.
var moveTable = []string{
	//pa da ob db oc pm
	". . . . X X", // prod/a
	"X . . . X X", // dev/a
	". . . . X .", // ops/b
	"X . . . X X", // dev/b
	". . . . . .", // ops/c
	"X X . X . .", // prod/m: egress to ops only; the only one ops/c takes
}
