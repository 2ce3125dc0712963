package policy_test

import (
	"testing"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/policytest"
)

// diffPods are the pods of the pure differential test in a world of family
// f, on node n1.
func diffPods(f policytest.Family) []policytest.PodRef {
	var out []policytest.PodRef
	for i, ns := range policytest.Namespaces {
		for j, name := range []string{"a", "b"} {
			out = append(out, policytest.PodRef{Namespace: ns, Name: name, IPs: policytest.Addresses(f, 1, 2*i+j)})
		}
	}
	return out
}

// TestEvaluatorAgreesWithCompiledRules draws random scenarios and checks
// that the evaluator (the spec, read independently) and a trace through the
// compiled ruleset (what the kernel gets) agree on every pair, protocol and
// port, on both packet paths, in IPv4, IPv6 and dual-stack worlds (each
// pair probed in every family both ends have; ipBlocks of both families,
// host prefixes, /24 and /64 with excepts, /0 with a /1 half or a host
// excepted). The seed is printed on any mismatch.
func TestEvaluatorAgreesWithCompiledRules(t *testing.T) {
	n := 1000 // per family
	if testing.Short() {
		n = 200
	}
	for _, fam := range policytest.Families {
		t.Run(string(fam), func(t *testing.T) {
			pods := diffPods(fam)
			probes := differential(t, n, pods)
			t.Logf("%d random %s scenarios, %d pods, %d probes each", n, fam, len(pods), probes)
		})
	}
}

// differential runs n scenarios over pods and returns the probes per
// scenario.
func differential(t *testing.T, n int, pods []policytest.PodRef) int {
	var atts []policy.Attachment
	for _, p := range pods {
		atts = append(atts, policy.Attachment{ContainerID: "c-" + p.Namespace + p.Name, IfName: "eth0",
			Namespace: p.Namespace, Name: p.Name, IPs: p.IPs})
	}
	mismatches, probes := 0, 0
	for seed := int64(1); seed <= int64(n) && mismatches < 5; seed++ {
		s := policytest.Scenario(seed, "n1", pods)
		if err := policy.ValidateSnapshot(s); err != nil {
			t.Fatalf("seed %d: generator made an invalid snapshot: %v", seed, err)
		}
		c, err := policy.Compile(s, atts)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		probes = 0
		for _, from := range pods {
			for _, to := range pods {
				for _, pair := range policytest.Pairs(from, to) {
					for _, pp := range policytest.Ports {
						probes++
						want := policy.Evaluate(s, atts, policy.Connection{From: pair[0], To: pair[1], Protocol: pp.Protocol, Port: pp.Port})
						for _, bridged := range []bool{true, false} {
							got, err := policy.Trace(c, policy.Packet{Src: pair[0], Dst: pair[1],
								Protocol: string(pp.Protocol), DPort: pp.Port, Bridged: bridged})
							if err != nil {
								t.Fatalf("seed %d: %v", seed, err)
							}
							if got.Allowed != want.Allowed {
								mismatches++
								t.Errorf("seed %d: %s/%s (%s) -> %s/%s (%s) %s/%d bridged=%v: compiled rules say %v, evaluator %v (%s | %s)\nrules: %v",
									seed, from.Namespace, from.Name, pair[0], to.Namespace, to.Name, pair[1], pp.Protocol, pp.Port, bridged,
									got.Allowed, want.Allowed, want.Egress.Verdict, want.Ingress.Verdict, got.Rules)
							}
						}
					}
				}
			}
		}
	}
	return probes
}
