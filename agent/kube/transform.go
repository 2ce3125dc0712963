package kube

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// stripPod keeps the pod's node, whether it is on the host network, the
// named ports of its containers (named ports are resolved on the pod), its
// phase and its addresses.
func stripPod(p *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		ObjectMeta: stripMeta(&p.ObjectMeta),
		Spec: corev1.PodSpec{
			NodeName:    p.Spec.NodeName,
			HostNetwork: p.Spec.HostNetwork,
		},
		Status: corev1.PodStatus{
			Phase:  p.Status.Phase,
			PodIP:  p.Status.PodIP,
			PodIPs: p.Status.PodIPs,
		},
	}
	for _, c := range p.Spec.Containers {
		var ports []corev1.ContainerPort
		for _, port := range c.Ports {
			if port.Name != "" {
				ports = append(ports, corev1.ContainerPort{Name: port.Name, Protocol: port.Protocol, ContainerPort: port.ContainerPort})
			}
		}
		if len(ports) > 0 {
			out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Ports: ports})
		}
	}
	return out
}

// sameButVersion reports whether two stripped objects differ at most in
// their resource version: an update the snapshot cannot see (a pod's
// conditions changed, say) triggers no sync.
func sameButVersion(a, b any) bool {
	switch x := a.(type) {
	case *corev1.Pod:
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
