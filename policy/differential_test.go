package policy_test

import (
	"fmt"
	"testing"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/policytest"
)

// diffPods are the pods of the pure differential test, on node n1.
func diffPods() []policytest.PodRef {
	var out []policytest.PodRef
	for i, ns := range policytest.Namespaces {
		for j, name := range []string{"a", "b"} {
			out = append(out, policytest.PodRef{Namespace: ns, Name: name, IP: fmt.Sprintf("10.244.1.%d", 2+2*i+j)})
		}
	}
	return out
}

// TestEvaluatorAgreesWithCompiledRules draws random scenarios and checks
// that the evaluator (the spec, read independently) and a trace through the
// compiled ruleset (what the kernel gets) agree on every pair, protocol and
// port, on both packet paths. The seed is printed on any mismatch.
func TestEvaluatorAgreesWithCompiledRules(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	pods := diffPods()
	var atts []policy.Attachment
	for _, p := range pods {
		atts = append(atts, policy.Attachment{ContainerID: "c-" + p.Namespace + p.Name, IfName: "eth0",
			Namespace: p.Namespace, Name: p.Name, IPs: []string{p.IP}})
	}
	mismatches := 0
	for seed := int64(1); seed <= int64(n) && mismatches < 5; seed++ {
		s := policytest.Scenario(seed, "n1", pods)
		if err := policy.ValidateSnapshot(s); err != nil {
			t.Fatalf("seed %d: generator made an invalid snapshot: %v", seed, err)
		}
		c, err := policy.Compile(s, atts)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, from := range pods {
			for _, to := range pods {
				for _, pp := range policytest.Ports {
					want := policy.Evaluate(s, atts, policy.Connection{From: from.IP, To: to.IP, Protocol: pp.Protocol, Port: pp.Port})
					for _, bridged := range []bool{true, false} {
						got, err := policy.Trace(c, policy.Packet{Src: from.IP, Dst: to.IP,
							Protocol: string(pp.Protocol), DPort: pp.Port, Bridged: bridged})
						if err != nil {
							t.Fatalf("seed %d: %v", seed, err)
						}
						if got.Allowed != want.Allowed {
							mismatches++
							t.Errorf("seed %d: %s/%s -> %s/%s %s/%d bridged=%v: compiled rules say %v, evaluator %v (%s | %s)\nrules: %v",
								seed, from.Namespace, from.Name, to.Namespace, to.Name, pp.Protocol, pp.Port, bridged,
								got.Allowed, want.Allowed, want.Egress.Verdict, want.Ingress.Verdict, got.Rules)
						}
					}
				}
			}
		}
	}
	t.Logf("%d random scenarios, %d pods, %d probes each", n, len(pods), len(pods)*len(pods)*len(policytest.Ports))
}
