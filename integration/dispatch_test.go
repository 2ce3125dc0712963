package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/netpol/netpol/integration/node"
)

// treeServers is how many pods of TestDispatchTreeOnRealTraffic each have a
// policy of their own: six groups a direction, so the dispatch tree has
// inner nodes (bit sets of levels 1 and 2) and leaves of two groups.
const treeServers = 6

// TestDispatchTreeOnRealTraffic runs six groups a direction through the
// kernel's dispatch tree: pod s<i> admits only client c<i%2> and may only
// reach the clients. The matrix must hold with the tree in place (and the
// tree, not the scan chain, must carry the packets), and hold again,
// through the scan chain, when the bit sets are emptied behind the agent's
// back (what a cut-short sync could leave): the tree can make a packet
// slower, never send it to another pod's group.
func TestDispatchTreeOnRealTraffic(t *testing.T) {
	podLabels := map[string]string{"default/c0": "app=client,key=v0", "default/c1": "app=client,key=v1"}
	var policies []string
	for i := 0; i < treeServers; i++ {
		podLabels[fmt.Sprintf("default/s%d", i)] = fmt.Sprintf("app=s%d", i)
		policies = append(policies, fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: s%[1]d, namespace: default}
spec:
  podSelector: {matchLabels: {app: s%[1]d}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {key: v%[2]d}}}]
    ports: [{protocol: TCP, port: %[3]d}]
  egress:
  - to: [{podSelector: {matchLabels: {app: client}}}]
`, i, i%2, servePort))
	}
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(podLabels))
	writeManifest(t, dir, "20-policies.yaml", yamlDocs(policies...))
	syncOnce(t, n, dir)
	keys := []string{"default/c0", "default/c1"}
	for i := 0; i < treeServers; i++ {
		keys = append(keys, fmt.Sprintf("default/s%d", i))
	}
	pods := addServingPods(t, n, keys...)
	syncOnce(t, n, dir)

	allowed := []string{"default/c0>default/c1", "default/c1>default/c0"}
	for i := 0; i < treeServers; i++ {
		s := fmt.Sprintf("default/s%d", i)
		allowed = append(allowed, fmt.Sprintf("default/c%d>%s", i%2, s), s+">default/c0", s+">default/c1")
	}
	sets := nodeSets(t, n)
	for _, name := range []string{"NETPOL4-BIT-I-1", "NETPOL4-BIT-I-2", "NETPOL4-BIT-E-1", "NETPOL4-BIT-E-2"} {
		if _, ok := sets[name]; !ok {
			t.Fatalf("no set %s: the dispatch tree has no inner node", name)
		}
	}

	execIn(t, n, "iptables", "-w", "5", "-Z")
	expectMatrix(t, "six groups, through the tree", pods, pods, allowed...)
	counters := chainCounters(t, n)
	if got := scanned(counters); got != 0 {
		t.Errorf("with the tree in step with the groups, %d packets fell back to the scan chains", got)
	}

	for _, name := range []string{"NETPOL4-BIT-I-1", "NETPOL4-BIT-I-2", "NETPOL4-BIT-E-1", "NETPOL4-BIT-E-2"} {
		execIn(t, n, "ipset", "flush", name)
	}
	execIn(t, n, "iptables", "-w", "5", "-Z")
	expectMatrix(t, "bit sets emptied: through the scan chains", pods, pods, allowed...)
	counters = chainCounters(t, n)
	if scanned(counters) == 0 {
		t.Errorf("with the bit sets emptied, no packet reached the scan chains:\n%s", strings.Join(rulesMentioning(t, n, "NETPOL-SCAN"), "\n"))
	}

	syncOnce(t, n, dir) // the agent refills the bit sets
	if got := nodeSets(t, n)["NETPOL4-BIT-I-2"]; len(got) != 2 {
		t.Errorf("after a sync, NETPOL4-BIT-I-2 = %v, want the pods of groups 4 and 5", got)
	}
}

// scanned is the number of packets the scan chains sent to a group chain:
// every rule there is a group-set match, and a packet matches at most one.
func scanned(chains map[string][]countedRule) uint64 {
	var n uint64
	for _, ch := range []string{"NETPOL-SCAN-I", "NETPOL-SCAN-E"} {
		for _, r := range chains[ch] {
			n += r.pkts
		}
	}
	return n
}

// TestGroupStopsAtFirstAllowOnRealTraffic selects pod s with two policies,
// s-a (admits c0) and s-b (admits c1), and reads the kernel's counters: a
// connection from c0, which s-a allows, must not enter s-b's chain; one
// from c1 must pass through s-a's chain into s-b's and be allowed; c2 is
// dropped.
func TestGroupStopsAtFirstAllowOnRealTraffic(t *testing.T) {
	podLabels := map[string]string{"default/s": "app=s", "default/c0": "key=v0", "default/c1": "key=v1", "default/c2": "key=v2"}
	var policies []string
	for i, name := range []string{"s-a", "s-b"} {
		policies = append(policies, fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: %s, namespace: default}
spec:
  podSelector: {matchLabels: {app: s}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {key: v%d}}}]
    ports: [{protocol: TCP, port: %d}]
`, name, i, servePort))
	}
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(podLabels))
	writeManifest(t, dir, "20-policies.yaml", yamlDocs(policies...))
	syncOnce(t, n, dir)
	pods := addServingPods(t, n, "default/s", "default/c0", "default/c1", "default/c2")
	syncOnce(t, n, dir)
	s := pods[:1]
	chains := chainCounters(t, n)
	chainA, chainB := chainWith(chains, "NETPOL-I-", "default/s-a ingress"), chainWith(chains, "NETPOL-I-", "default/s-b ingress")
	group := chainWith(chains, "NETPOL-GI-", "-j "+chainB)
	if chainA == "" || chainB == "" || group == "" {
		t.Fatalf("no policy chains for default/s-a (%q) and default/s-b (%q), or no group chain jumping to both (%q)", chainA, chainB, group)
	}
	// A rule's counter counts the packets it matched: the group chain's
	// jump to a policy chain counts the packets that entered that chain.
	entered := func(chains map[string][]countedRule, policy string) bool {
		return rulePackets(chains, group, "-j "+policy) > 0
	}
	for i, tc := range []struct {
		allowed        bool
		enterA, enterB bool
	}{{true, true, false}, {true, true, true}, {false, true, true}} {
		c := pods[1+i : 2+i]
		execIn(t, n, "iptables", "-w", "5", "-Z")
		var allowed []string
		if tc.allowed {
			allowed = []string{c[0].Label() + ">default/s"}
		}
		expectMatrix(t, c[0].Label()+" to s", c, s, allowed...)
		chains = chainCounters(t, n)
		gotA, gotB := entered(chains, chainA), entered(chains, chainB)
		if gotA != tc.enterA || gotB != tc.enterB {
			t.Errorf("%s -> s: entered s-a's chain %v (want %v), s-b's %v (want %v):\n%s", c[0].Label(),
				gotA, tc.enterA, gotB, tc.enterB, strings.Join(rulesMentioning(t, n, "default/s-"), "\n"))
		}
	}
}
