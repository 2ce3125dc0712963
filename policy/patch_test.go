package policy_test

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/testsnap"
)

// patchCluster is a cluster big enough for every kind of policy and peer,
// small enough to compile in a few milliseconds.
func patchCluster() (*policy.Snapshot, []policy.Attachment) {
	c := testsnap.Generate(testsnap.Config{Seed: 7, Node: "node-000", Nodes: 10, Namespaces: 20,
		Pods: 1500, LocalPods: 40, Policies: 200})
	return c.Snapshot(), c.Attachments(36)
}

// patchChange is one change of the kind a running agent sees, applied to
// a copy of the snapshot (or of the attachments).
type patchChange struct {
	name    string
	patched bool // Patch must handle it (else it may decline)
	apply   func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment)
}

func clonePod(s *policy.Snapshot, i int) *policy.Pod {
	s.Pods = slices.Clone(s.Pods)
	p := &s.Pods[i]
	p.Labels = maps.Clone(p.Labels)
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	return p
}

func pickPod(r *rand.Rand, s *policy.Snapshot, local bool) int {
	for {
		i := r.Intn(len(s.Pods))
		if s.IsLocal(&s.Pods[i]) == local {
			return i
		}
	}
}

func flipLabel(p *policy.Pod, r *rand.Rand) {
	keys := []string{"version", "tier", "app", "canary"}
	vals := []string{"v1", "v2", "frontend", "backend", "data", "web", "api", "gateway", "true", ""}
	k, v := keys[r.Intn(len(keys))], vals[r.Intn(len(vals))]
	if v == "" {
		delete(p.Labels, k)
	} else {
		p.Labels[k] = v
	}
}

func clonePolicy(s *policy.Snapshot, i int) *networkingv1.NetworkPolicy {
	s.Policies = slices.Clone(s.Policies)
	s.Policies[i] = *s.Policies[i].DeepCopy()
	return &s.Policies[i]
}

var patchChanges = []patchChange{
	{"remote pod labels", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		flipLabel(clonePod(s, pickPod(r, s, false)), r)
		return s, atts
	}},
	{"local pod labels", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		flipLabel(clonePod(s, pickPod(r, s, true)), r)
		return s, atts
	}},
	{"remote pod address", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		p := clonePod(s, pickPod(r, s, false))
		p.IPs = []string{fmt.Sprintf("10.250.%d.%d", r.Intn(200), 1+r.Intn(250))}
		return s, atts
	}},
	{"remote pod deleted", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		i := pickPod(r, s, false)
		s.Pods = slices.Delete(slices.Clone(s.Pods), i, i+1)
		return s, atts
	}},
	{"remote pod added", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		p := s.Pods[pickPod(r, s, false)]
		p.Name += "-new"
		p.IPs = []string{fmt.Sprintf("10.251.%d.%d", r.Intn(200), 1+r.Intn(250))}
		p.Labels = maps.Clone(p.Labels)
		s.Pods = append(slices.Clone(s.Pods), p)
		return s, atts
	}},
	{"remote pod named port", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		p := clonePod(s, pickPod(r, s, false))
		names := []string{"http", "grpc", "metrics"}
		p.Ports = []policy.NamedPort{{Name: names[r.Intn(len(names))], Protocol: corev1.ProtocolTCP, Port: int32(8000 + r.Intn(100))}}
		return s, atts
	}},
	{"remote pod namespace", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		i := pickPod(r, s, false)
		p := s.Pods[i]
		p.Namespace = s.Namespaces[r.Intn(len(s.Namespaces))].Name
		p.Labels = maps.Clone(p.Labels)
		s.Pods = append(slices.Delete(slices.Clone(s.Pods), i, i+1), p)
		return s, atts
	}},
	{"attachment removed", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		i := r.Intn(len(atts))
		return s, slices.Delete(slices.Clone(atts), i, i+1)
	}},
	{"attachment of an unknown pod", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		a := atts[r.Intn(len(atts))]
		a.ContainerID, a.Name, a.IPs = "ffff"+a.ContainerID, a.Name+"-unknown", []string{fmt.Sprintf("10.244.1.%d", 200+r.Intn(50))}
		return s, append(slices.Clone(atts), a)
	}},
	{"policy ports", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		np := clonePolicy(s, r.Intn(len(s.Policies)))
		port := intstr.FromInt32(int32(7000 + r.Intn(100)))
		if r.Intn(2) == 0 {
			port = intstr.FromString("metrics")
		}
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
			Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}})
		return s, atts
	}},
	{"policy port number", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		np := clonePolicy(s, r.Intn(len(s.Policies)))
		port := intstr.FromInt32(int32(9000 + r.Intn(2)))
		switch {
		case len(np.Spec.Ingress) > 0 && r.Intn(2) == 0:
			np.Spec.Ingress[0].Ports = append(slices.Clone(np.Spec.Ingress[0].Ports), networkingv1.NetworkPolicyPort{Port: &port})
		case len(np.Spec.Egress) > 0:
			np.Spec.Egress[0].Ports = append(slices.Clone(np.Spec.Egress[0].Ports), networkingv1.NetworkPolicyPort{Port: &port})
		default:
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}})
		}
		return s, atts
	}},
	{"policy added, selecting no pod", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		np := *s.Policies[r.Intn(len(s.Policies))].DeepCopy()
		np.Name += fmt.Sprintf("-added-%d", r.Intn(1000))
		np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"none": "selected"}}
		s.Policies = append(slices.Clone(s.Policies), np)
		return s, atts
	}},
	{"policy peer", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		np := clonePolicy(s, r.Intn(len(s.Policies)))
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"version": fmt.Sprintf("v%d", 1+r.Intn(3)), "tier": "backend"}}}},
			Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromString([]string{"http", "grpc", "nope"}[r.Intn(3)]))}}})
		return s, atts
	}},
	{"policy selector", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		np := clonePolicy(s, r.Intn(len(s.Policies)))
		np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": []string{"web", "api", "db"}[r.Intn(3)]}}
		return s, atts
	}},
	{"policy selects another local pod", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		pod := &s.Pods[pickPod(r, s, true)]
		for _, i := range r.Perm(len(s.Policies)) {
			if s.Policies[i].Namespace == pod.Namespace {
				np := clonePolicy(s, i)
				np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: maps.Clone(pod.Labels)}
				break
			}
		}
		return s, atts
	}},
	{"policy types", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		// A policy that selects a pod of this node governs another set
		// of directions.
		pod := &s.Pods[pickPod(r, s, true)]
		for _, i := range r.Perm(len(s.Policies)) {
			np := &s.Policies[i]
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if np.Namespace != pod.Namespace || err != nil || !sel.Matches(labels.Set(pod.Labels)) {
				continue
			}
			types := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
			if len(np.Spec.Egress) > 0 || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				types = types[:1]
			}
			clonePolicy(s, i).Spec.PolicyTypes = types
			break
		}
		return s, atts
	}},
	{"policy deleted", true, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		i := r.Intn(len(s.Policies))
		s.Policies = slices.Delete(slices.Clone(s.Policies), i, i+1)
		return s, atts
	}},
	{"namespace labels", false, func(r *rand.Rand, s *policy.Snapshot, atts []policy.Attachment) (*policy.Snapshot, []policy.Attachment) {
		s.Namespaces = slices.Clone(s.Namespaces)
		ns := &s.Namespaces[r.Intn(len(s.Namespaces))]
		ns.Labels = maps.Clone(ns.Labels)
		ns.Labels["monitoring"] = "enabled-" + fmt.Sprint(r.Intn(2))
		return s, atts
	}},
}

func ptr[T any](v T) *T { return &v }

// remoteOnly names the changes that only pods of other nodes make: Patch
// takes its members-only path for them (policy.PatchPeers).
var remoteOnly = map[string]bool{"remote pod labels": true, "remote pod address": true, "remote pod deleted": true,
	"remote pod added": true, "remote pod named port": true, "remote pod namespace": true}

// policyOnly names the changes of policies alone, and whether Patch's
// path for policies that select the same pods here as before
// (policy.PatchPolicies) must take each (else it may decline).
var policyOnly = map[string]bool{"policy ports": false, "policy port number": true, "policy added, selecting no pod": true,
	"policy peer": false, "policy selector": false, "policy deleted": false, "policy selects another local pod": false,
	"policy types": false}

// TestPatchIsCompile drives Patch through a chain of random changes of
// every kind, each from the last result, and requires each result to be
// exactly what Compile makes of the same input (rules, sets, members,
// index); a change it declines is compiled, as the agent does.
func TestPatchIsCompile(t *testing.T) {
	snap, atts := patchCluster()
	prev, err := policy.Compile(snap, atts)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	patched, rulesOnly := map[string]int{}, map[string]int{}
	for step := range 3 * len(patchChanges) {
		ch := patchChanges[step%len(patchChanges)]
		cp := *snap
		next, nextAtts := ch.apply(r, &cp, atts)
		want, err := policy.Compile(next, nextAtts)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := policy.Patch(prev, snap, atts, next, nextAtts)
		if err != nil {
			t.Fatalf("step %d (%s): %v", step, ch.name, err)
		}
		switch {
		case ok:
			patched[ch.name]++
			if d := cmp.Diff(want, got, cmpopts.IgnoreUnexported(policy.Compiled{})); d != "" {
				t.Fatalf("step %d (%s): Patch differs from Compile (-want +got):\n%s", step, ch.name, d)
			}
		case ch.patched:
			t.Errorf("step %d (%s): Patch declined", step, ch.name)
		}
		if remoteOnly[ch.name] {
			peers, ok := policy.PatchPeers(prev, snap, next, nextAtts)
			if !ok {
				t.Fatalf("step %d (%s): the members-only path declined", step, ch.name)
			}
			if d := cmp.Diff(want, peers, cmpopts.IgnoreUnexported(policy.Compiled{})); d != "" {
				t.Fatalf("step %d (%s): the members-only path differs from Compile (-want +got):\n%s", step, ch.name, d)
			}
		}
		if must, ok := policyOnly[ch.name]; ok {
			got, ok := policy.PatchPolicies(prev, snap, next)
			switch {
			case ok:
				rulesOnly[ch.name]++
				if d := cmp.Diff(want, got, cmpopts.IgnoreUnexported(policy.Compiled{})); d != "" {
					t.Fatalf("step %d (%s): the policies-only path differs from Compile (-want +got):\n%s", step, ch.name, d)
				}
			case must:
				t.Fatalf("step %d (%s): the policies-only path declined", step, ch.name)
			}
		}
		prev, snap, atts = want, next, nextAtts
	}
	t.Logf("policies-only path taken: %v", rulesOnly)
	for _, ch := range patchChanges {
		if ch.patched && patched[ch.name] == 0 {
			t.Errorf("%s: never patched", ch.name)
		}
	}
	_ = corev1.ProtocolTCP
}

// TestPatchDeclinesAuditChanges: audit (a namespace's annotation, or the
// node-wide flag) and the drop log settings change every group chain's
// verdict, which Patch does not recompute; it must hand such a change back
// to a whole compile rather than keep the old verdicts.
func TestPatchDeclinesAuditChanges(t *testing.T) {
	snap, atts := patchCluster()
	prev, err := policy.Compile(snap, atts)
	if err != nil {
		t.Fatal(err)
	}
	ns := *snap
	ns.Namespaces = slices.Clone(snap.Namespaces)
	ns.Namespaces[0].Audit = true
	node := *snap
	node.Audit = true
	logs := *snap
	logs.DropLog = &policy.DropLog{Group: 7, Rate: 1, Burst: 1}
	for name, next := range map[string]*policy.Snapshot{"namespace annotated": &ns, "node-wide --audit": &node, "drop log": &logs} {
		if _, ok, err := policy.Patch(prev, snap, atts, next, atts); err != nil || ok {
			t.Errorf("%s: Patch = ok %v, err %v; want it to decline", name, ok, err)
		}
	}
}

// TestPatchPoliciesDirections: a policy that selects pods of this node and
// stops governing one direction changes their groups, which the
// policies-only path does not recompute: it must decline, or give
// Compile's result.
func TestPatchPoliciesDirections(t *testing.T) {
	snap, atts := patchCluster()
	both := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	tried := 0
	for i := range snap.Policies {
		np := &snap.Policies[i]
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !slices.ContainsFunc(snap.Pods, func(p policy.Pod) bool {
			return snap.IsLocal(&p) && p.Namespace == np.Namespace && sel.Matches(labels.Set(p.Labels))
		}) {
			continue
		}
		from := *snap
		clonePolicy(&from, i).Spec.PolicyTypes = both
		prev, err := policy.Compile(&from, atts)
		if err != nil {
			t.Fatal(err)
		}
		for _, types := range [][]networkingv1.PolicyType{both[:1], both[1:]} {
			to := from
			clonePolicy(&to, i).Spec.PolicyTypes = types
			want, err := policy.Compile(&to, atts)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := policy.PatchPolicies(prev, &from, &to); ok {
				if d := cmp.Diff(want, got, cmpopts.IgnoreUnexported(policy.Compiled{})); d != "" {
					t.Fatalf("%s: types %v: the policies-only path differs from Compile (-want +got):\n%s", np.Name, types, d)
				}
			}
		}
		if tried++; tried == 3 {
			return
		}
	}
	t.Fatalf("only %d policies select a pod of this node", tried)
}
