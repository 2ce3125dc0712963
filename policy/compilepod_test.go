package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/ipt"
)

// TestCompilePodIsPartOfCompile checks that every chain CompilePod returns
// for a pod is the one Compile installs, that the pod's own group and policy
// chains are among them, and that other pods' group chains are not.
func TestCompilePodIsPartOfCompile(t *testing.T) {
	denyIngress := `
metadata: {name: deny-ingress, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress]}
`
	allowFromProj := `
metadata: {name: allow-proj, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {project: myproject}}}], ports: [{port: 80}]}]
`
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: testPods,
		Policies: parsePolicies(t, denyIngress, allowFromProj)}
	full, err := Compile(s, testAtts)
	if err != nil {
		t.Fatal(err)
	}
	dbGroup := groupChain(Ingress, "ingress:default/allow-proj,default/deny-ingress")
	feGroup := groupChain(Ingress, "ingress:default/deny-ingress")
	for _, c := range []struct {
		pod       string
		want, not []string
	}{
		{"default/db", []string{dbGroup, policyChain(Ingress, "default/allow-proj"), policyChain(Ingress, "default/deny-ingress")}, []string{feGroup}},
		{"default/fe", []string{feGroup, policyChain(Ingress, "default/deny-ingress")}, []string{dbGroup, policyChain(Ingress, "default/allow-proj")}},
		{"alice/ac", nil, []string{dbGroup, feGroup, policyChain(Ingress, "default/deny-ingress")}},
	} {
		rulesets, err := CompilePod(s, c.pod)
		if err != nil {
			t.Fatal(err)
		}
		for _, rs := range rulesets {
			whole := full.Ruleset(rs.Family)
			if len(rs.Sets) != 0 {
				t.Errorf("%s %s: CompilePod returned sets", c.pod, rs.Family)
			}
			if !cmp.Equal(rs.Hooks, whole.Hooks) {
				t.Errorf("%s %s: hooks differ from Compile's:\n%s", c.pod, rs.Family, cmp.Diff(whole.Hooks, rs.Hooks))
			}
			got := map[string]ipt.Chain{}
			for _, ch := range rs.Chains {
				got[ch.Name] = ch
				if w := chainNamed(whole, ch.Name); w == nil || !cmp.Equal(ch, *w) {
					t.Errorf("%s %s: chain %s is not Compile's", c.pod, rs.Family, ch.Name)
				}
			}
			for _, name := range append([]string{ChainForward, ChainBridged, ChainRouted, ChainIngress, ChainEgress, ChainAllow}, c.want...) {
				if _, ok := got[name]; !ok {
					t.Errorf("%s %s: chain %s missing", c.pod, rs.Family, name)
				}
			}
			for _, name := range c.not {
				if _, ok := got[name]; ok {
					t.Errorf("%s %s: chain %s is not the pod's", c.pod, rs.Family, name)
				}
			}
		}
	}
}

func chainNamed(rs *ipt.Ruleset, name string) *ipt.Chain {
	for i := range rs.Chains {
		if rs.Chains[i].Name == name {
			return &rs.Chains[i]
		}
	}
	return nil
}
