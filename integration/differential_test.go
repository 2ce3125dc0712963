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
// NETPOL_DIFF_SEEDS scenarios run (default 6; `make differential` runs 200),
// starting at seed NETPOL_DIFF_FIRST (default 1). A mismatch prints the seed.
func TestDifferentialRealTraffic(t *testing.T) {
	seeds := envInt(t, "NETPOL_DIFF_SEEDS", 6)
	first := envInt(t, "NETPOL_DIFF_FIRST", 1)
	c := newCluster(t, world{})
	var refs []policytest.PodRef
	var pods []*node.Pod
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
			refs = append(refs, policytest.PodRef{Namespace: ns, Name: name, IPs: []string{p.IP}})
		}
	}
	var atts []policy.Attachment
	for _, p := range pods {
		atts = append(atts, policy.Attachment{ContainerID: p.ContainerID, IfName: "eth0", Namespace: p.Namespace, Name: p.Name, IPs: []string{p.IP}})
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
		for _, pp := range policytest.Ports {
			want := node.NewTable(node.Labels(pods), node.Labels(pods), false)
			for i, from := range pods {
				for j, to := range pods {
					v := policy.Evaluate(snap, atts, policy.Connection{From: from.IP, To: to.IP, Protocol: pp.Protocol, Port: pp.Port})
					want.Allowed[i][j] = v.Allowed
				}
			}
			got := node.MatrixTimeout(pods, pods, strings.ToLower(string(pp.Protocol)), int(pp.Port), denyTimeout)
			if diff := got.Diff(want); len(diff) > 0 {
				failed++
				t.Errorf("seed %d, %s/%d: real traffic differs from the evaluator in %d cells: %s\ngot:\n%s\nwant (evaluator):\n%s\nmanifests:\n%s",
					seed, pp.Protocol, pp.Port, len(diff), strings.Join(diff, "; "), got, want, yaml)
			}
		}
	}
	t.Logf("%d random scenarios from seed %d on real traffic (%d pods, %s)", seeds, first, len(pods), fmt.Sprint(policytest.Ports))
}
