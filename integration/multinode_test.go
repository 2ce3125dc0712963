package integration

// Multi-node tests: three nodes (network namespaces with their own bridge,
// pod subnet 10.244.N.0/24, CNI chain and agent) joined by an underlay with
// host-gw routes (node.Cluster). Egress is enforced on the sending node,
// ingress on the receiving node; same-node traffic takes the bridged path,
// cross-node traffic the routed path, and each packet is evaluated once per
// direction. flannel_test.go uses the helpers of this file too.

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// placedPod is a pod of a multi-node world and the node it runs on.
type placedPod struct {
	key    string // "namespace/name"
	labels map[string]string
	node   int // index into Cluster.Nodes
	opts   node.PodOptions
}

// clusterWorld is a cluster, its pods and the one manifest directory every
// node's agent reads (as every agent watches the same API server).
type clusterWorld struct {
	t        *testing.T
	c        *node.Cluster
	dir      string
	nss      map[string]map[string]string // namespace -> labels
	specs    []placedPod
	pods     map[string]*node.Pod
	policies string
}

// newClusterWorld creates the cluster; pods are created by add.
func newClusterWorld(t *testing.T, o node.ClusterOptions, nss map[string]map[string]string, specs []placedPod) *clusterWorld {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	start := time.Now()
	w := &clusterWorld{t: t, c: node.NewCluster(t, o), dir: t.TempDir(), nss: nss, specs: specs, pods: map[string]*node.Pod{}}
	t.Logf("cluster of %d nodes in %v", len(w.c.Nodes), time.Since(start).Round(time.Millisecond))
	return w
}

// nineWorld is the standard world: namespaces prod, dev and ops (label
// team=<name>), pods a, b and c in each (label pod=<name>), placed
// round-robin so that a is on node-1, b on node-2 and c on node-3.
func nineWorld() (map[string]map[string]string, []placedPod) {
	nss := map[string]map[string]string{}
	var specs []placedPod
	for _, ns := range []string{"prod", "dev", "ops"} {
		nss[ns] = map[string]string{"team": ns}
		for i, name := range []string{"a", "b", "c"} {
			specs = append(specs, placedPod{key: ns + "/" + name, labels: map[string]string{"pod": name}, node: i})
		}
	}
	return nss, specs
}

// nineKeys is the table order of nineWorld.
var nineKeys = []string{"prod/a", "prod/b", "prod/c", "dev/a", "dev/b", "dev/c", "ops/a", "ops/b", "ops/c"}

// ninePolicies: prod denies ingress except TCP 80 from namespace ops (whose
// pods are on every node); dev/b (node-2) may only send to ops/c (node-3)
// on TCP 80; ops selects its pods for egress and allows all of it (no
// effect on the tables; it gives the sender a group chain to count).
const ninePolicies = `
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
metadata: {name: b-egress-to-ops-c, namespace: dev}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {team: ops}}
      podSelector: {matchLabels: {pod: c}}
    ports:
    - port: 80
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-anywhere, namespace: ops}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - {}
`

// nineTCP80 is what ninePolicies mean for TCP 80 once every agent knows
// every pod's IP. Rows are sources, columns destinations, in nineKeys
// order; a is on node-1, b on node-2, c on node-3.
var nineTCP80 = []string{
	//pa pb pc da db dc oa ob oc
	". X X . . . . . .", // prod/a: prod pods only take ops
	"X . X . . . . . .", // prod/b
	"X X . . . . . . .", // prod/c
	"X X X . . . . . .", // dev/a
	"X X X X . X X X .", // dev/b: egress only to ops/c (another node)
	"X X X . . . . . .", // dev/c
	". . . . . . . . .", // ops/a: allowed into prod on every node
	". . . . . . . . .", // ops/b
	". . . . . . . . .", // ops/c
}

// nineClosed is TCP 81 and UDP 80: prod allows ops on TCP 80 only, dev/b
// may send on TCP 80 only.
var nineClosed = []string{
	". X X . . . . . .",
	"X . X . . . . . .",
	"X X . . . . . . .",
	"X X X . . . . . .",
	"X X X X . X X X X",
	"X X X . . . . . .",
	"X X X . . . . . .",
	"X X X . . . . . .",
	"X X X . . . . . .",
}

// add creates the pods, in spec order, each through its own node's CNI
// chain, serving TCP and UDP on ports.
func (w *clusterWorld) add(ports ...int) {
	w.t.Helper()
	for _, s := range w.specs {
		w.addOne(s, ports...)
	}
}

func (w *clusterWorld) addOne(s placedPod, ports ...int) *node.Pod {
	w.t.Helper()
	ns, name, _ := strings.Cut(s.key, "/")
	n := w.c.Nodes[s.node]
	p, err := n.AddPodOpts(ns, name, s.opts)
	if err != nil {
		w.t.Fatalf("ADD %s on %s: %v", s.key, n.Name, err)
	}
	if err := p.Serve(ports...); err != nil {
		w.t.Fatalf("serve in %s: %v", s.key, err)
	}
	w.pods[s.key] = p
	return p
}

// manifests renders namespaces and pods: every pod with spec.nodeName,
// and status.podIPs once it has been created (when withIPs).
func (w *clusterWorld) manifests(withIPs bool) string {
	var b strings.Builder
	for _, ns := range slices.Sorted(maps.Keys(w.nss)) {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: %s\n", ns, yamlMap(w.nss[ns]))
	}
	for _, s := range w.specs {
		ns, name, _ := strings.Cut(s.key, "/")
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n  labels: %s\n"+
			"spec:\n  nodeName: %s\n  containers:\n  - name: c\n    image: none\n", name, ns, yamlMap(s.labels), w.c.Nodes[s.node].Name)
		if p := w.pods[s.key]; withIPs && p != nil {
			fmt.Fprintf(&b, "status:\n  podIP: %s\n  podIPs:\n", p.IPs[0])
			for _, ip := range p.IPs {
				fmt.Fprintf(&b, "  - ip: %s\n", ip)
			}
		}
	}
	return b.String()
}

// sync writes the manifests and policies and runs one sync on every node.
func (w *clusterWorld) sync(withIPs bool) {
	w.t.Helper()
	w.write(withIPs)
	if err := w.c.RunAgents("--manifests", w.dir, "--once"); err != nil {
		w.t.Fatalf("agent sync: %v", err)
	}
}

// write writes the manifests and policies into the agents' directory.
func (w *clusterWorld) write(withIPs bool) {
	w.t.Helper()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	write("00-world.yaml", w.manifests(withIPs))
	write("10-policies.yaml", w.policies)
}

// list returns pods by key.
func (w *clusterWorld) list(keys ...string) []*node.Pod {
	w.t.Helper()
	out := make([]*node.Pod, len(keys))
	for i, k := range keys {
		if out[i] = w.pods[k]; out[i] == nil {
			w.t.Fatalf("no pod %s", k)
		}
	}
	return out
}

// ips returns the IPv4 addresses of pods, sorted.
func (w *clusterWorld) ips(keys ...string) []string {
	var out []string
	for _, p := range w.list(keys...) {
		out = append(out, p.IP)
	}
	sort.Strings(out)
	return out
}

// ipsetMembers returns the ipsets of a node: name -> sorted members (the first
// field of each member line).
func ipsetMembers(t *testing.T, n *node.Node) map[string][]string {
	t.Helper()
	sets := map[string][]string{}
	var cur string
	members := false
	for _, l := range strings.Split(execIn(t, n, "ipset", "list"), "\n") {
		switch {
		case strings.HasPrefix(l, "Name: "):
			cur, members = strings.TrimPrefix(l, "Name: "), false
			sets[cur] = []string{}
		case l == "Members:":
			members = true
		case members && strings.TrimSpace(l) != "":
			sets[cur] = append(sets[cur], strings.Fields(l)[0])
		case strings.TrimSpace(l) == "":
			members = false
		}
	}
	for k := range sets {
		sort.Strings(sets[k])
	}
	return sets
}

// setsWithPrefix returns the member lists of the sets named prefix*,
// sorted, as strings.
func setsWithPrefix(sets map[string][]string, prefix string) []string {
	var out []string
	for name, m := range sets {
		if strings.HasPrefix(name, prefix) {
			out = append(out, strings.Join(m, ","))
		}
	}
	sort.Strings(out)
	return out
}

// countedRule is one rule of iptables-save -c: its packet counter and text.
type countedRule struct {
	pkts uint64
	text string
}

var counterLine = regexp.MustCompile(`^\[(\d+):\d+\] (-A (\S+) .*)$`)

// chainCounters returns the filter table of a node with counters: chain -> rules.
func chainCounters(t *testing.T, n *node.Node) map[string][]countedRule {
	t.Helper()
	out := map[string][]countedRule{}
	for _, l := range strings.Split(execIn(t, n, "iptables-save", "-c", "-t", "filter"), "\n") {
		m := counterLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		pk, _ := strconv.ParseUint(m[1], 10, 64)
		out[m[3]] = append(out[m[3]], countedRule{pkts: pk, text: m[2]})
	}
	return out
}

// chainWith returns the name of the chain with prefix whose rules
// mention substr (a policy key in a comment), or "".
func chainWith(chains map[string][]countedRule, prefix, substr string) string {
	for _, name := range slices.Sorted(maps.Keys(chains)) {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, r := range chains[name] {
			if strings.Contains(r.text, substr) {
				return name
			}
		}
	}
	return ""
}

// packetsEntered is how many packets entered a chain: the counter of its first
// rule, for chains that start with a rule without matches (the path and
// group chains).
func packetsEntered(chains map[string][]countedRule, chain string) uint64 {
	if rs := chains[chain]; len(rs) > 0 {
		return rs[0].pkts
	}
	return 0
}

// rulePackets is the counter of the first rule of chain containing substr.
func rulePackets(chains map[string][]countedRule, chain, substr string) uint64 {
	for _, r := range chains[chain] {
		if strings.Contains(r.text, substr) {
			return r.pkts
		}
	}
	return 0
}

// rulesMentioning returns the iptables rules mentioning substr, as text.
func rulesMentioning(t *testing.T, n *node.Node, substr string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(execIn(t, n, "iptables-save", "-t", "filter"), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestMultiNodePolicies: three nodes, nine pods (one of each namespace on
// every node), policies that need remote pods as peers (from
// status.podIPs) and an egress allow to a pod of another node; every cell,
// same-node and cross-node, on real connections, in both orders.
func TestMultiNodePolicies(t *testing.T) {
	for _, order := range []string{"pods-first", "policies-first"} {
		t.Run(order, func(t *testing.T) {
			nss, specs := nineWorld()
			w := newClusterWorld(t, node.ClusterOptions{Nodes: 3}, nss, specs)
			w.policies = ninePolicies
			if order == "pods-first" {
				w.add(80, 81)
				w.sync(true)
			} else {
				w.sync(false) // pods known without IPs, policies in place
				w.add(80, 81)
				// Each node knows only its own pods' IPs (CNI ADD): local
				// peers work from the first packet, remote peers do not yet.
				pods := w.list(nineKeys...)
				expect(t, "after ADD, before the agents learn remote IPs", pods, pods, "tcp", 80,
					//pa pb pc da db dc oa ob oc
					". X X . . . . . .",
					"X . X . . . . . .",
					"X X . . . . . . .",
					"X X X . . . . . .",
					"X X X X . X X X X", // ops/c's IP is not known on node-2 yet
					"X X X . . . . . .",
					". X X . . . . . .", // ops/a reaches prod/a (same node) only
					"X . X . . . . . .",
					"X X . . . . . . .",
				)
				w.sync(true) // status.podIPs of every pod
			}
			pods := w.list(nineKeys...)
			expect(t, "TCP 80", pods, pods, "tcp", 80, nineTCP80...)
			expect(t, "TCP 81", pods, pods, "tcp", 81, nineClosed...)
			expect(t, "UDP 80", pods, pods, "udp", 80, nineClosed...)
			checkSetPlacement(t, w)
		})
	}
}

// checkSetPlacement checks where each node put which pod: peer sets hold remote
// pods too (from status.podIPs), group sets (the dispatch of egress by
// source and ingress by destination) only this node's pods.
func checkSetPlacement(t *testing.T, w *clusterWorld) {
	t.Helper()
	ops := strings.Join(w.ips("ops/a", "ops/b", "ops/c"), ",")
	for i, n := range w.c.Nodes {
		sets := ipsetMembers(t, n)
		peers := setsWithPrefix(sets, "NETPOL4-P-")
		if !slices.Contains(peers, ops) {
			t.Errorf("%s: no peer set holds the three ops pods %s (local and remote); peer sets: %v", n.Name, ops, peers)
		}
		opsC := w.pods["ops/c"].IP
		if got := slices.Contains(peers, opsC); got != (i == 1) {
			t.Errorf("%s: peer set {ops/c %s} present=%v, want %v (dev/b, the only pod its policy selects, is on node-2); peer sets: %v",
				n.Name, opsC, got, i == 1, peers)
		}
		name := []string{"a", "b", "c"}[i]
		if got, want := setsWithPrefix(sets, "NETPOL4-GI-"), []string{w.pods["prod/"+name].IP}; !slices.Equal(got, want) {
			t.Errorf("%s: ingress group sets %v, want %v (prod/%s, this node's only isolated pod)", n.Name, got, want, name)
		}
		wantGE := []string{w.pods["ops/"+name].IP}
		if i == 1 {
			wantGE = append(wantGE, w.pods["dev/b"].IP)
		}
		sort.Strings(wantGE)
		if got := setsWithPrefix(sets, "NETPOL4-GE-"); !slices.Equal(got, wantGE) {
			t.Errorf("%s: egress group sets %v, want %v", n.Name, got, wantGE)
		}
		if d := sets["NETPOL4-DENY"]; len(d) != 0 {
			t.Errorf("%s: DENY set holds %v, want nothing", n.Name, d)
		}
		devRules := rulesMentioning(t, n, "dev/b-egress-to-ops-c")
		if got := len(devRules) > 0; got != (i == 1) {
			t.Errorf("%s: rules of dev/b-egress-to-ops-c present=%v, want %v:\n%s", n.Name, got, i == 1, strings.Join(devRules, "\n"))
		}
	}
}

// pathCounters is what one node's counters say about a connection.
type pathCounters struct {
	forward, established, bridged, routed, egress, ingress, ge, gi uint64
}

func (p pathCounters) String() string {
	return fmt.Sprintf("FORWARD->NETPOL-FORWARD %d (ESTABLISHED/RELATED returned %d), NETPOL-BRIDGED %d, NETPOL-ROUTED %d, "+
		"NETPOL-EGRESS %d, NETPOL-INGRESS %d, egress group of ops %d, ingress group of prod %d",
		p.forward, p.established, p.bridged, p.routed, p.egress, p.ingress, p.ge, p.gi)
}

// readPath reads one node's counters.
func readPath(t *testing.T, n *node.Node) pathCounters {
	t.Helper()
	ch := chainCounters(t, n)
	return pathCounters{
		forward:     rulePackets(ch, "FORWARD", "-j NETPOL-FORWARD"),
		established: rulePackets(ch, "NETPOL-FORWARD", "RELATED,ESTABLISHED"),
		bridged:     packetsEntered(ch, "NETPOL-BRIDGED"),
		routed:      packetsEntered(ch, "NETPOL-ROUTED"),
		// The dispatch chains start with the DENY-set rule; count the jumps.
		egress: rulePackets(ch, "NETPOL-BRIDGED", "-j NETPOL-EGRESS") +
			rulePackets(ch, "NETPOL-ROUTED", "-j NETPOL-EGRESS"),
		ingress: rulePackets(ch, "NETPOL-BRIDGED", "-j NETPOL-INGRESS") +
			rulePackets(ch, "NETPOL-ROUTED", "-j NETPOL-INGRESS"),
		ge: packetsEntered(ch, chainWith(ch, "NETPOL-GE-", "ops/egress-anywhere")),
		gi: packetsEntered(ch, chainWith(ch, "NETPOL-GI-", "prod/allow-from-ops")),
	}
}

// probeOnePath zeroes every node's counters, makes one allowed TCP connection
// from -> to on port 80, and compares each node's counts of the packets
// that were evaluated (the conntrack-NEW ones: forward and established are
// logged, not compared) with want; a node wanted at zero must see nothing
// at all. A stray packet (none is expected in these namespaces) could add
// to a count, so it measures up to three times; a packet evaluated twice
// would double the counts every time.
func probeOnePath(t *testing.T, w *clusterWorld, name, from, to string, want map[*node.Node]pathCounters) {
	t.Helper()
	var got map[*node.Node]pathCounters
	ok := false
	for attempt := 1; attempt <= 3 && !ok; attempt++ {
		for _, n := range w.c.Nodes {
			execIn(t, n, "iptables", "-w", "5", "-t", "filter", "-Z")
		}
		if err := node.ProbeOnce(w.pods[from], w.pods[to].IP, "tcp", 80, 2*time.Second); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond) // let the FIN exchange finish
		got = map[*node.Node]pathCounters{}
		ok = true
		for _, n := range w.c.Nodes {
			p := readPath(t, n)
			got[n] = p
			t.Logf("%s, attempt %d, %s: %s", name, attempt, n.Name, p)
			cmp := p
			cmp.forward, cmp.established = 0, 0
			if cmp != want[n] || (want[n] == pathCounters{} && p.forward != 0) {
				ok = false
			}
		}
	}
	if !ok {
		for _, n := range w.c.Nodes {
			t.Errorf("%s: %s: got %s; want (NEW packets) %s", name, n.Name, got[n], want[n])
		}
	}
}

// TestMultiNodeOncePerDirection shows with the rules' packet counters that
// a connection's first packet (the only conntrack-NEW one) takes the
// bridged path on its node when both pods share it, the routed path on
// both nodes when they do not, never both, and enters the egress group
// chain of its source once (on the sending node) and the ingress group
// chain of its destination once (on the receiving node).
func TestMultiNodeOncePerDirection(t *testing.T) {
	nss, specs := nineWorld()
	w := newClusterWorld(t, node.ClusterOptions{Nodes: 3}, nss, specs)
	w.policies = ninePolicies
	w.add(80)
	w.sync(true)
	n1, n2, n3 := w.c.Nodes[0], w.c.Nodes[1], w.c.Nodes[2]
	zero := pathCounters{}
	cases := []struct {
		name     string
		from, to string
		want     map[*node.Node]pathCounters
	}{
		{"same node: ops/a -> prod/a on node-1 (bridged)", "ops/a", "prod/a", map[*node.Node]pathCounters{
			n1: {bridged: 1, egress: 1, ingress: 1, ge: 1, gi: 1}, n2: zero, n3: zero}},
		{"cross node: ops/a on node-1 -> prod/b on node-2 (routed)", "ops/a", "prod/b", map[*node.Node]pathCounters{
			n1: {routed: 1, egress: 1, ingress: 1, ge: 1}, n2: {routed: 1, egress: 1, ingress: 1, gi: 1}, n3: zero}},
		{"cross node: ops/c on node-3 -> prod/a on node-1 (routed)", "ops/c", "prod/a", map[*node.Node]pathCounters{
			n3: {routed: 1, egress: 1, ingress: 1, ge: 1}, n1: {routed: 1, egress: 1, ingress: 1, gi: 1}, n2: zero}},
	}
	for _, tc := range cases {
		probeOnePath(t, w, tc.name, tc.from, tc.to, tc.want)
	}
	// A denied connection: every SYN (each is NEW: the dropped one never
	// got a conntrack entry) is counted once on each node and dropped once,
	// by the ingress group of the destination on the receiving node.
	for _, n := range w.c.Nodes {
		execIn(t, n, "iptables", "-w", "5", "-t", "filter", "-Z")
	}
	if err := node.ProbeOnce(w.pods["dev/a"], w.pods["prod/c"].IP, "tcp", 80, 1500*time.Millisecond); err == nil {
		t.Fatalf("dev/a -> prod/c connected; want denied")
	}
	p1, p3 := readPath(t, n1), readPath(t, n3)
	drops := rulePackets(chainCounters(t, n3), chainWith(chainCounters(t, n3), "NETPOL-GI-", "prod/allow-from-ops"), "-j DROP")
	t.Logf("denied dev/a (node-1) -> prod/c (node-3): node-1: %s; node-3: %s; dropped by node-3's ingress group: %d", p1, p3, drops)
	if p1.routed == 0 || p1.bridged != 0 || p3.bridged != 0 || p1.routed != p3.routed || p3.gi != p3.routed ||
		drops != p3.routed || p1.gi != 0 || p1.ge != 0 {
		t.Errorf("denied cross-node SYNs: node-1 %s; node-3 %s; drops %d: want each SYN routed once on both nodes, "+
			"checked and dropped once by node-3's ingress group", p1, p3, drops)
	}
}

// setKindsHolding returns the kinds of sets (name without its hash, e.g.
// NETPOL4-GI) that hold ip, sorted.
func setKindsHolding(sets map[string][]string, ip string) []string {
	var out []string
	for name, members := range sets {
		if slices.Contains(members, ip) {
			kind := name
			if i := strings.LastIndex(name, "-"); i > 0 && name != "NETPOL4-DENY" {
				kind = name[:i]
			}
			out = append(out, kind)
		}
	}
	sort.Strings(out)
	return out
}

// kernelState is netpol's part of a node's kernel, comparable across
// time: our chains with their rules in order (no counters), the FORWARD
// hook, and every set with its type and sorted members.
func kernelState(t *testing.T, n *node.Node) string {
	t.Helper()
	chains := map[string][]string{}
	for _, l := range strings.Split(execIn(t, n, "iptables-save", "-t", "filter"), "\n") {
		switch {
		case strings.HasPrefix(l, ":NETPOL"):
			name := strings.Fields(l)[0][1:]
			chains[name] = append(chains[name], ":"+name)
		case strings.HasPrefix(l, "-A ") && strings.Contains(l, "NETPOL"):
			name := strings.Fields(l)[1]
			chains[name] = append(chains[name], l)
		}
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(chains)) {
		b.WriteString(strings.Join(chains[name], "\n") + "\n")
	}
	sets := ipsetMembers(t, n)
	types := map[string]string{}
	var cur string
	for _, l := range strings.Split(execIn(t, n, "ipset", "list"), "\n") {
		if strings.HasPrefix(l, "Name: ") {
			cur = strings.TrimPrefix(l, "Name: ")
		} else if strings.HasPrefix(l, "Type: ") {
			types[cur] = strings.TrimPrefix(l, "Type: ")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(sets)) {
		fmt.Fprintf(&b, "set %s %s: %s\n", name, types[name], strings.Join(sets[name], " "))
	}
	return b.String()
}
