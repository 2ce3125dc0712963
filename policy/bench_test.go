package policy_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/testsnap"
)

// BenchmarkCompile compiles the large synthetic cluster (10,000 pods over 100
// namespaces and 100 nodes, 1,000 policies; 100 pods on this node, all
// recorded by CNI ADD) as the agent does on every sync. It reports ns/op,
// allocs/op and the size of the result.
func BenchmarkCompile(b *testing.B) {
	c := testsnap.Generate(testsnap.Large("node-000"))
	snap, atts := c.Snapshot(), c.Attachments(100)
	if err := policy.ValidateSnapshot(snap); err != nil {
		b.Fatal(err)
	}
	var out *policy.Compiled
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = policy.Compile(snap, atts); err != nil {
			b.Fatal(err)
		}
	}
	var chains, rules, sets, members int
	for _, rs := range out.Rulesets {
		chains += len(rs.Chains)
		for _, ch := range rs.Chains {
			rules += len(ch.Rules)
		}
		sets += len(rs.Sets)
		for _, s := range rs.Sets {
			members += len(s.Members)
		}
	}
	b.ReportMetric(float64(chains), "chains")
	b.ReportMetric(float64(rules), "rules")
	b.ReportMetric(float64(sets), "sets")
	b.ReportMetric(float64(members), "members")
}

// BenchmarkCompilePod compiles, in the same cluster, what CNI CHECK of one
// local pod compares with the kernel.
func BenchmarkCompilePod(b *testing.B) {
	c := testsnap.Generate(testsnap.Large("node-000"))
	snap, atts := c.Snapshot(), c.Attachments(100)
	if err := policy.ValidateSnapshot(snap); err != nil {
		b.Fatal(err)
	}
	pod := atts[0].PodKey()
	var chains int
	b.ReportAllocs()
	for b.Loop() {
		out, err := policy.CompilePod(snap, pod)
		if err != nil {
			b.Fatal(err)
		}
		chains = 0
		for _, rs := range out {
			chains += len(rs.Chains)
		}
	}
	b.ReportMetric(float64(chains), "chains")
}

// BenchmarkPatch is what a running agent pays to recompute the large
// cluster after one change, with policy.Patch, next to policy.Compile of
// the same input (the baseline), alternating: a label of a pod of another
// node, and a port added to one policy.
func BenchmarkPatch(b *testing.B) {
	c := testsnap.Generate(testsnap.Large("node-000"))
	snap, atts := c.Snapshot(), c.Attachments(100)
	prev, err := policy.Compile(snap, atts)
	if err != nil {
		b.Fatal(err)
	}
	label := *snap
	label.Pods = slices.Clone(snap.Pods)
	for i := range label.Pods {
		if p := &label.Pods[i]; !snap.IsLocal(p) {
			p.Labels = maps.Clone(p.Labels)
			p.Labels["version"] = "v9"
			break
		}
	}
	pol := *snap
	pol.Policies = slices.Clone(snap.Policies)
	np := pol.Policies[8].DeepCopy()
	np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
	pol.Policies[8] = *np
	for _, next := range []struct {
		name string
		snap *policy.Snapshot
	}{{"label", &label}, {"policy", &pol}} {
		b.Run("change="+next.name+"/patch", func(b *testing.B) {
			for b.Loop() {
				if _, ok, err := policy.Patch(prev, snap, atts, next.snap, atts); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
		b.Run("change="+next.name+"/compile", func(b *testing.B) {
			for b.Loop() {
				if _, err := policy.Compile(next.snap, atts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExpect is what a sync pays to make what CHECK reads (Expect,
// encoded as state stores it) in the large cluster, next to Compile of the
// same input (the baseline), alternating.
func BenchmarkExpect(b *testing.B) {
	c := testsnap.Generate(testsnap.Large("node-000"))
	snap, atts := c.Snapshot(), c.Attachments(100)
	compiled, err := policy.Compile(snap, atts)
	if err != nil {
		b.Fatal(err)
	}
	var bytes int
	var expect, compile time.Duration
	for b.Loop() {
		t0 := time.Now()
		data, err := json.Marshal(policy.Expect(compiled))
		if err != nil {
			b.Fatal(err)
		}
		bytes = len(data)
		t1 := time.Now()
		if _, err := policy.Compile(snap, atts); err != nil {
			b.Fatal(err)
		}
		expect, compile = expect+t1.Sub(t0), compile+time.Since(t1)
	}
	b.ReportMetric(float64(expect.Microseconds())/float64(b.N), "expect-µs/op")
	b.ReportMetric(float64(compile.Microseconds())/float64(b.N), "compile-µs/op")
	b.ReportMetric(float64(bytes), "bytes")
}
