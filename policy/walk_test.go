package policy_test

import (
	"strings"
	"testing"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/testsnap"
)

// row1Pair is make perf's world (integration's pfLarge: 10,110 pods on
// 101 nodes, 110 of them here, 1,000 policies in 50 namespaces, every
// local pod recorded by CNI ADD) and the pair of its row 1, picked as
// integration's pfPair picks it: a backend pod of a prod namespace that
// its policies let out, and another pod of its namespace that
// allow-same-namespace lets in.
func row1Pair(t *testing.T) (c *policy.Compiled, client, server string) {
	t.Helper()
	cl := testsnap.Generate(testsnap.Config{Seed: 1, Node: "node-000", Nodes: 101,
		Namespaces: 50, Pods: 10110, LocalPods: 110, Policies: 1000})
	env := map[string]string{}
	for _, ns := range cl.Namespaces {
		env[ns.Name] = ns.Labels["env"]
	}
	local := cl.LocalPods()
	for i, p := range local {
		if p.Labels["tier"] != "backend" || env[p.Namespace] != "prod" {
			continue
		}
		for j, sv := range local {
			if sv.Namespace == p.Namespace && j != i {
				out, err := policy.Compile(cl.Snapshot(), cl.Attachments(len(local)))
				if err != nil {
					t.Fatal(err)
				}
				return out, testsnap.LocalIP(i), testsnap.LocalIP(j)
			}
		}
	}
	t.Fatal("the perf world has no backend pod with a neighbour in a prod namespace")
	return nil, "", ""
}

// walkPart names the part of the ruleset a chain belongs to, for the
// breakdown of a walk.
func walkPart(chain string) string {
	switch {
	case chain == policy.ChainForward || chain == policy.ChainBridged || chain == policy.ChainRouted:
		return "hooks"
	case chain == policy.ChainIngress || chain == policy.ChainEgress:
		return "DENY and isolated sets"
	case strings.HasPrefix(chain, ipt.Prefix+"-T"), strings.HasPrefix(chain, ipt.Prefix+"-SCAN-"):
		return "dispatch tree"
	case strings.HasPrefix(chain, ipt.Prefix+"-G"):
		return "group chains"
	case chain == policy.ChainAllow:
		return "NETPOL-ALLOW"
	}
	return "policy chains"
}

// TestRow1Walk traces the first packet (SYN) of make perf's row 1
// connection, bridged, through the compiled ruleset, and counts the rules
// it is tested against and the set lookups they take, by part (the egress
// of the client and the ingress of the server; every later packet of the
// connection stops at the conntrack rule). The totals must not grow:
// they are what a new connection pays (README, "A group stops at the
// first policy that allows").
func TestRow1Walk(t *testing.T) {
	// 71 rules and 25 lookups before the tree's lower halves followed in
	// their node's chain (61), and the pending mark replaced NETPOL-PASS.
	const maxRules, maxLookups = 59, 25
	c, client, server := row1Pair(t)
	res, err := policy.Trace(c, policy.Packet{Src: client, Dst: server, Protocol: "tcp", DPort: 8080, Bridged: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Allowed {
		t.Fatalf("%s -> %s:8080 is denied, want allowed: %q", client, server, res.Rules)
	}
	var order []string
	rules, lookups := map[string]int{}, map[string]int{}
	total, totalLookups := 0, 0
	for _, ref := range res.Walked {
		part := walkPart(ref.Chain)
		if _, ok := rules[part]; !ok {
			order = append(order, part)
		}
		rules[part]++
		lookups[part] += ref.Lookups
		total++
		totalLookups += ref.Lookups
	}
	for _, part := range order {
		t.Logf("%-24s %2d rules, %2d set lookups", part, rules[part], lookups[part])
	}
	t.Logf("%-24s %2d rules, %2d set lookups", "in all", total, totalLookups)
	if total > maxRules || totalLookups > maxLookups {
		t.Errorf("row 1's SYN walks %d rules and %d set lookups, want at most %d and %d", total, totalLookups, maxRules, maxLookups)
	}
}
