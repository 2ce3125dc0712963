package policy_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/testsnap"
)

// TestExpectForIsCompilePod holds what CHECK reads (policy.Expect, then
// node.Expected.For with the pod's index entry) to what CHECK compiled
// before (CompilePod, rendered), for every local pod of a generated
// cluster and one pod the index does not know: the same hooks, the same
// chains, rule for rule.
func TestExpectForIsCompilePod(t *testing.T) {
	c := testsnap.Generate(testsnap.Config{Seed: 11, Node: "node-000", Nodes: 5, Namespaces: 8,
		Pods: 300, LocalPods: 40, Policies: 60})
	snap, atts := c.Snapshot(), c.Attachments(40)
	if err := policy.ValidateSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	compiled, err := policy.Compile(snap, atts)
	if err != nil {
		t.Fatal(err)
	}
	exp := policy.Expect(compiled)
	pods := []string{"nobody/unknown"}
	for k := range compiled.Index.Pods {
		pods = append(pods, k)
	}
	if len(pods) < 5 {
		t.Fatalf("only %d local pods in the index", len(pods)-1)
	}
	for _, pod := range pods {
		want, err := policy.CompilePod(snap, pod)
		if err != nil {
			t.Fatal(err)
		}
		for _, rs := range want {
			wantHooks, wantChains := ipt.Render(&rs)
			hooks, chains, ok := exp.For(rs.Family, compiled.Index.Pods[pod])
			if !ok {
				t.Fatalf("Expect has no family %s", rs.Family)
			}
			if d := cmp.Diff(wantHooks, hooks); d != "" {
				t.Errorf("%s %s: hooks differ from CompilePod (-CompilePod +Expect):\n%s", pod, rs.Family, d)
			}
			if d := cmp.Diff(wantChains, chains); d != "" {
				t.Errorf("%s %s: chains differ from CompilePod (-CompilePod +Expect):\n%s", pod, rs.Family, d)
			}
		}
	}
	total := 0
	for _, ch := range exp.Families[0].Chains {
		if len(ch.Groups) > 0 {
			total++
		}
	}
	if total == 0 {
		t.Fatal("no chain of the generated cluster is a group's or a policy's: the test proves nothing")
	}
}
