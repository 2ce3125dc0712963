package kube

import (
	"errors"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

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
// validated on its own (policy.ValidateNamespace, ValidatePod,
// ValidatePolicy), once per resourceVersion, so a Load after one change
// validates one object, not the cluster.
func (s *Source) build() (*policy.Snapshot, error) {
	b := manifest.NewBuilder(s.opts.Node)
	checked := make(map[string]verdict, len(s.checked))
	skipped := 0
	valid := func(key string, meta *metav1.ObjectMeta, validate func() field.ErrorList) bool {
		v, ok := s.checked[key]
		if !ok || v.version != meta.ResourceVersion || meta.ResourceVersion == "" {
			v = verdict{version: meta.ResourceVersion, err: joinFieldErrors(validate())}
			if v.err != nil {
				s.opts.Log.Error("skipping an object the API server accepted but netpol cannot validate",
					"object", key, "err", v.err.Error())
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
			if valid("namespace "+ns.Name, &ns.ObjectMeta, func() field.ErrorList {
				c := manifest.ConvertNamespace(ns)
				return policy.ValidateNamespace(&c)
			}) {
				b.AddNamespace(ns)
			}
		}
	}
	for _, obj := range s.informers[1].GetStore().List() {
		if p, ok := obj.(*cachedPod); ok && s.isPeer(p) {
			if valid("pod "+p.Namespace+"/"+p.Name, &p.ObjectMeta, func() field.ErrorList {
				return policy.ValidatePod(&p.View)
			}) {
				b.AddConvertedPod(p.View)
			}
		}
	}
	for _, obj := range s.informers[2].GetStore().List() {
		if np, ok := obj.(*networkingv1.NetworkPolicy); ok {
			if valid("networkpolicy "+np.Namespace+"/"+np.Name, &np.ObjectMeta, func() field.ErrorList {
				c := manifest.ConvertPolicy(np)
				return policy.ValidatePolicy(&c)
			}) {
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
		ObjectMeta: metav1.ObjectMeta{Name: np.Name, Namespace: np.Namespace, ResourceVersion: np.ResourceVersion},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

// isPeer reports whether a pod belongs in the snapshot (see the package
// comment).
func (s *Source) isPeer(p *cachedPod) bool {
	switch {
	case p.View.Node == "", p.HostNetwork:
		return false
	case p.Phase == corev1.PodSucceeded || p.Phase == corev1.PodFailed:
		return false
	case p.View.Node != s.opts.Node && len(p.View.IPs) == 0:
		return false
	}
	return true
}

// joinFieldErrors is nil for no errors, else the field errors joined with
// "; " (the log names the object already).
func joinFieldErrors(fes field.ErrorList) error {
	if len(fes) == 0 {
		return nil
	}
	msgs := make([]string, len(fes))
	for i, fe := range fes {
		msgs[i] = fe.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}
