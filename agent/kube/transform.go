package kube

import (
	"maps"
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/policy"
)

// strip is the informers' transform: it keeps only what the snapshot needs
// of an object, before the object enters the cache, so the agent's memory
// grows with labels and addresses, not with whole pod specs. It is
// idempotent (the informer may apply it to an object twice) and passes
// anything else (a DeletedFinalStateUnknown tombstone) through unchanged.
func strip(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return stripPod(o), nil
	case *corev1.Namespace:
		meta := stripMeta(&o.ObjectMeta)
		if v, ok := o.Annotations[policy.AuditAnnotation]; ok {
			meta.Annotations = map[string]string{policy.AuditAnnotation: v} // the one annotation netpol reads
		}
		return &corev1.Namespace{ObjectMeta: meta}, nil
	case *networkingv1.NetworkPolicy:
		return &networkingv1.NetworkPolicy{ObjectMeta: stripMeta(&o.ObjectMeta), Spec: o.Spec}, nil
	}
	return obj, nil
}

// stripMeta keeps name, namespace, labels and resource version: no
// annotations (last-applied-configuration alone can be kilobytes), managed
// fields, owner references or UIDs.
func stripMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            m.Name,
		Namespace:       m.Namespace,
		Labels:          m.Labels,
		ResourceVersion: m.ResourceVersion,
	}
}

// cachedPod is what the pod informer caches of a pod: its metadata as
// stripMeta keeps it (the informer's key, and the version a validation
// verdict is kept for), the snapshot's view of it, and what isPeer needs
// besides. A stripped *corev1.Pod kept ~1.75 KB a pod (its struct alone is
// 1.2 KB, a container with a named port 0.4 KB more); this keeps ~0.5 KB
// (README, "The pod cache"). It is immutable once made: the snapshots
// built from it share its labels, addresses and ports.
type cachedPod struct {
	metav1.ObjectMeta
	// View is manifest.ConvertPod of the pod with no default node: Node is
	// empty while the pod is not scheduled.
	View        policy.Pod
	HostNetwork bool
	Phase       corev1.PodPhase
}

// GetObjectKind is runtime.Object's: a cached pod carries no type.
func (*cachedPod) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject is runtime.Object's.
func (p *cachedPod) DeepCopyObject() runtime.Object {
	c := *p
	p.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	c.View.Labels = maps.Clone(p.View.Labels)
	c.View.IPs = slices.Clone(p.View.IPs)
	c.View.Ports = slices.Clone(p.View.Ports)
	return &c
}

// stripPod keeps the pod's node, whether it is on the host network, the
// named ports of its containers (named ports are resolved on the pod), its
// phase and its addresses, converted as the manifest loader converts a pod.
func stripPod(p *corev1.Pod) *cachedPod {
	return &cachedPod{
		ObjectMeta:  stripMeta(&p.ObjectMeta),
		View:        manifest.ConvertPod(p, ""),
		HostNetwork: p.Spec.HostNetwork,
		Phase:       p.Status.Phase,
	}
}

// sameButVersion reports whether two stripped objects differ at most in
// their resource version: an update the snapshot cannot see (a pod's
// conditions changed, say) triggers no sync.
func sameButVersion(a, b any) bool {
	switch x := a.(type) {
	case *cachedPod:
		return same(x, b)
	case *corev1.Namespace:
		return same(x, b)
	case *networkingv1.NetworkPolicy:
		return same(x, b)
	}
	return false
}

func same[T any, P interface {
	*T
	metav1.Object
}](x P, b any) bool {
	y, ok := b.(P)
	if !ok || x == nil || y == nil {
		return false
	}
	xc, yc := *x, *y
	P(&xc).SetResourceVersion("")
	P(&yc).SetResourceVersion("")
	return reflect.DeepEqual(&xc, &yc)
}
