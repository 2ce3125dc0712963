package plugin

import (
	"context"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// TestCheckReadsTheAgentsExpectedRules: once the agent has synced, CHECK
// compares the kernel with expected.json, the rules of the agent's last
// commit. A data directory with an index but no expected.json (an agent of
// an older version) and one whose expected.json names another index fail
// with an error saying so, never pass; with the file in step, CHECK passes,
// and fails naming the pod's policy chain when a rule of it is gone.
func TestCheckReadsTheAgentsExpectedRules(t *testing.T) {
	f := newFixture(t)
	if _, err := f.call(add, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	st := state.New(f.dataDir)
	compiled := f.sync(st)
	for _, tc := range []struct {
		name, index, says string
	}{
		{"no expected.json", "", "left no expected.json"},
		{"expected.json of another index", "0000", "made for another index"},
	} {
		if tc.index != "" {
			body, err := state.EncodeExpectedFamilies(policy.Expect(compiled))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.WriteExpected(tc.index, body); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.call(check, "c1", podArgs, f.stdin("")); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: CHECK = %v, want an error saying %q", tc.name, err, tc.says)
		}
	}
	body, err := state.EncodeExpectedFamilies(policy.Expect(compiled))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteExpected(state.IndexSum(state.EncodeIndex(&compiled.Index)), body); err != nil {
		t.Fatal(err)
	}
	if _, err := f.call(check, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("CHECK with expected.json in step: %v", err)
	}
	var chain string
	for _, ch := range compiled.Rulesets[0].Chains {
		if strings.HasPrefix(ch.Name, "NETPOL-I-") {
			chain = ch.Name
		}
	}
	if chain == "" {
		t.Fatal("the compile has no ingress policy chain")
	}
	f.run("iptables", "-w", "-D", chain, "1")
	if _, err := f.call(check, "c1", podArgs, f.stdin("")); err == nil || !strings.Contains(err.Error(), chain+": missing rule") {
		t.Errorf("a rule of %s removed: CHECK = %v, want an error naming it", chain, err)
	}
}

// sync does what the agent's sync does for the recorded pods, with a policy
// that lets default/a receive TCP 80 from anywhere: the kernel programmed,
// the index stored. It returns the compile.
func (f *fixture) sync(st *state.Store) *policy.Compiled {
	f.t.Helper()
	atts, _, err := st.Attachments()
	if err != nil {
		f.t.Fatal(err)
	}
	snap := &policy.Snapshot{Version: policy.SnapshotVersion, Node: "n1",
		Namespaces: []policy.Namespace{{Name: "default", Labels: map[string]string{"kubernetes.io/metadata.name": "default"}}},
		Pods:       []policy.Pod{{Namespace: "default", Name: "a", Node: "n1", Labels: map[string]string{"app": "a"}}},
		Policies: []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			},
		}},
	}
	compiled, err := policy.Compile(snap, atts)
	if err != nil {
		f.t.Fatal(err)
	}
	k, err := Default().NewKernel("")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.netns.Do(func(ns.NetNS) error { return k.Apply(context.Background(), compiled.Rulesets) }); err != nil {
		f.t.Fatal(err)
	}
	if err := st.WriteIndex(&compiled.Index); err != nil {
		f.t.Fatal(err)
	}
	return compiled
}
