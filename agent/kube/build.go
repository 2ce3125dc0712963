package kube

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/policy"
)

// verdict is the validation result of one version of one object.
type verdict struct {
	version string // resourceVersion validated
	err     error
}

// build converts the cached objects to a snapshot, leaving out the pods
// that are no peers and the objects that fail validation. Each object is
// validated on its own, once per resourceVersion, so a Load after one
// change validates one object, not the cluster.
func (s *Source) build() (*policy.Snapshot, error) {
	b := manifest.NewBuilder(s.opts.Node)
	checked := make(map[string]verdict, len(s.checked))
	skipped := 0
	valid := func(key string, meta *metav1.ObjectMeta, one func(*manifest.Builder)) bool {
		v, ok := s.checked[key]
		if !ok || v.version != meta.ResourceVersion || meta.ResourceVersion == "" {
			ob := manifest.NewBuilder(s.opts.Node)
			one(ob)
			v = verdict{version: meta.ResourceVersion, err: policy.ValidateSnapshot(ob.Snapshot())}
			if v.err != nil {
				s.opts.Log.Error("skipping an object the API server accepted but netpol cannot validate",
					"object", key, "err", fieldPart(v.err))
			}
		}
		checked[key] = v
		if v.err != nil {
			skipped++
		}
		return v.err == nil
	}
	for _, obj := range s.informers[0].GetStore().List() {
		if ns, ok := obj.(*corev1.Namespace); ok {
			if valid("namespace "+ns.Name, &ns.ObjectMeta, func(ob *manifest.Builder) { ob.AddNamespace(ns) }) {
				b.AddNamespace(ns)
			}
		}
	}
	for _, obj := range s.informers[1].GetStore().List() {
		if p, ok := obj.(*corev1.Pod); ok && s.isPeer(p) {
			if valid("pod "+p.Namespace+"/"+p.Name, &p.ObjectMeta, func(ob *manifest.Builder) { ob.AddPod(p) }) {
				b.AddPod(p)
			}
		}
	}
	for _, obj := range s.informers[2].GetStore().List() {
		if np, ok := obj.(*networkingv1.NetworkPolicy); ok {
			if valid("networkpolicy "+np.Namespace+"/"+np.Name, &np.ObjectMeta, func(ob *manifest.Builder) { ob.AddPolicy(np) }) {
				b.AddPolicy(np)
			} else {
				b.AddPolicy(denyAllFor(np))
			}
		}
	}
	s.checked = checked
	s.mu.Lock()
	s.skipped = skipped
	s.mu.Unlock()
	return b.Snapshot(), nil
}

// denyAllFor stands in for a policy netpol cannot validate. Leaving it out
// would fail open (it may be the only policy isolating its namespace);
// guessing at its meaning is worse. So every pod of its namespace is denied
// all ingress and egress until the policy is fixed; the error is logged and
// counted in netpol_skipped_objects.
func denyAllFor(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: np.Name, Namespace: np.Namespace},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

// isPeer reports whether a pod belongs in the snapshot (see the package
// comment).
func (s *Source) isPeer(p *corev1.Pod) bool {
	switch {
	case p.Spec.NodeName == "", p.Spec.HostNetwork:
		return false
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		return false
	case p.Spec.NodeName != s.opts.Node && len(p.Status.PodIPs) == 0 && p.Status.PodIP == "":
		return false
	}
	return true
}

// fieldPart drops the object prefix ValidateSnapshot puts before each
// problem ("pods[0] \"ns/name\": "): the log names the object already.
func fieldPart(err error) string {
	var parts []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if _, rest, ok := strings.Cut(line, ": "); ok {
			line = rest
		}
		parts = append(parts, line)
	}
	return strings.Join(parts, "; ")
}
