package policy

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// The defaults netpol applies to what it reads are decided here and nowhere
// else; the snapshot builder (agent/manifest), Compile and Evaluate all call
// these:
//
//   - NamespaceLabels: every namespace carries NamespaceNameLabel with its
//     name as the value, as the API server sets it, whether or not the
//     snapshot lists the namespace or its labels list the label;
//   - ProtocolOrTCP and portProtocol: an empty protocol of a container port
//     or of a NetworkPolicyPort is TCP, the API's default;
//   - Snapshot.IsLocal: a pod with no node is this node's (a manifest may
//     leave spec.nodeName out; the manifest builder records the node it
//     defaults to, so this matters to hand-made snapshots).

// NamespaceNameLabel is the label the API server puts on every namespace,
// with the namespace's name as its value.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// NamespaceLabels returns a copy of labels with NamespaceNameLabel=name.
func NamespaceLabels(name string, labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[NamespaceNameLabel] = name
	return out
}

// ProtocolOrTCP returns p, or TCP when p is empty.
func ProtocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// portProtocol is the protocol of a NetworkPolicyPort: "The protocol (TCP,
// UDP, or SCTP) which traffic must match. If not specified, this field
// defaults to TCP."
func portProtocol(p *networkingv1.NetworkPolicyPort) corev1.Protocol {
	if p.Protocol == nil {
		return corev1.ProtocolTCP
	}
	return ProtocolOrTCP(*p.Protocol)
}

// IsLocal reports whether pod p runs on the snapshot's node: its node is
// the snapshot's, or it has none.
func (s *Snapshot) IsLocal(p *Pod) bool { return p.Node == "" || p.Node == s.Node }
