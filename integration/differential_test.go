package integration

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/policytest"
)

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// TestDifferentialRealTraffic draws random scenarios (labels, policies with
// expressions, ipBlocks over pod IPs with excepts, numeric, named and ranged
// ports, ingress and egress), applies each through the agent to one node
// whose six pods were created through the real CNI chain, and compares the
// reachability observed on real TCP and UDP connections with policy.Evaluate.
// Pods keep their identity from one scenario to the next, so every scenario
// is also a relabelling and a policy replacement of the previous one.
//
// It runs once per address family of the node's pods: IPv4-only, IPv6-only
// and dual-stack (both families probed for every cell; the ipBlocks are of
// either family, host prefixes, /24 or /64 with excepts, and /0).
// NETPOL_DIFF_FAMILIES picks them (default "ipv4,ipv6,dual").
// NETPOL_DIFF_SEEDS scenarios run per family (default 4; `make
// differential` runs 200), starting at seed NETPOL_DIFF_FIRST (default 1).
// A mismatch prints the family and the seed.
func TestDifferentialRealTraffic(t *testing.T) {
	seeds := envInt(t, "NETPOL_DIFF_SEEDS", 4)
	first := envInt(t, "NETPOL_DIFF_FIRST", 1)
	families := "ipv4,ipv6,dual"
	if v := os.Getenv("NETPOL_DIFF_FAMILIES"); v != "" {
		families = v
	}
	for _, name := range strings.Split(families, ",") {
		fam, err := node.ParseFamily(name)
		if err != nil {
			t.Fatalf("NETPOL_DIFF_FAMILIES: %v", err)
		}
		t.Run(string(fam), func(t *testing.T) { differentialOn(t, fam, seeds, first) })
	}
}

// differentialOn runs seeds scenarios from first on a node whose pods have
// addresses of family fam.
func differentialOn(t *testing.T, fam node.Family, seeds, first int) {
	c := &cluster{t: t, node: node.New(t, node.Options{Family: fam}), dir: t.TempDir(), pods: map[string]*node.Pod{}}
	var refs []policytest.PodRef
	var pods []*node.Pod
	var atts []policy.Attachment
	for _, ns := range policytest.Namespaces {
		for _, name := range []string{"a", "b"} {
			p, err := c.node.AddPod(ns, name)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Serve(80, 81); err != nil {
				t.Fatal(err)
			}
			pods = append(pods, p)
			refs = append(refs, policytest.PodRef{Namespace: ns, Name: name, IPs: p.IPs})
			atts = append(atts, policy.Attachment{ContainerID: p.ContainerID, IfName: "eth0", Namespace: ns, Name: name, IPs: p.IPs})
		}
	}
	failed := 0
	for seed := int64(first); seed < int64(first+seeds) && failed < 3; seed++ {
		snap := policytest.Scenario(seed, c.node.Name, refs)
		yaml, err := policytest.Manifests(snap)
		if err != nil {
			t.Fatal(err)
		}
		c.write("00-world.yaml", string(yaml))
		c.sync()
		// Each scenario is judged on new connections.
		if err := c.node.FlushConntrack(); err != nil {
			t.Fatal(err)
		}
		for _, single := range fam.Single() {
			hosts := node.In(pods, single)
			for _, pp := range policytest.Ports {
				want := node.NewTable(node.Labels(hosts), node.Labels(hosts), false)
				for i, from := range hosts {
					for j, to := range hosts {
						v := policy.Evaluate(snap, atts, policy.Connection{From: from.Addr(), To: to.Addr(), Protocol: pp.Protocol, Port: pp.Port})
						want.Allowed[i][j] = v.Allowed
					}
				}
				got := node.MatrixTimeout(hosts, hosts, strings.ToLower(string(pp.Protocol)), int(pp.Port), denyTimeout)
				if diff := got.Diff(want); len(diff) > 0 {
					failed++
					t.Errorf("%s pods, seed %d, %s over %s: real traffic differs from the evaluator in %d cells: %s\ngot:\n%s\nwant (evaluator):\n%s\nmanifests:\n%s",
						fam, seed, fmt.Sprintf("%s/%d", pp.Protocol, pp.Port), single, len(diff), strings.Join(diff, "; "), got, want, yaml)
				}
			}
		}
	}
	t.Logf("%d random scenarios from seed %d on real traffic (%s pods, %d of them, %s)", seeds, first, fam, len(pods), fmt.Sprint(policytest.Ports))
}
