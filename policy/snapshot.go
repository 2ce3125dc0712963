// Package policy is the pure core of netpol: Kubernetes NetworkPolicy
// semantics and the compiler from a Snapshot to the desired ipt.Ruleset of one
// node. Nothing here performs I/O, reads a clock, logs or keeps globals;
// Compile is deterministic to the byte.
package policy

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// SnapshotVersion is written into every snapshot; readers reject others.
const SnapshotVersion = 1

// Snapshot is the cached cluster view the agent writes and the compiler reads:
// namespaces with labels, pods with labels, IPs and named ports, and the
// NetworkPolicy objects themselves. The API defaults its readers apply (the
// namespace name label, protocol TCP, a pod with no node being this node's)
// are decided once, in defaults.go.
type Snapshot struct {
	Version    int                          `json:"version"`
	Node       string                       `json:"node"`
	Namespaces []Namespace                  `json:"namespaces"`
	Pods       []Pod                        `json:"pods"`
	Policies   []networkingv1.NetworkPolicy `json:"policies"`
	// Audit puts every policy of the node in audit (see Audited).
	Audit bool `json:"audit,omitempty"`
	// DropLog is how the agent that wrote the snapshot has drops logged
	// (nil: DefaultDropLog()); a compile of the stored snapshot (an agent
	// restarted, explain) logs as the agent did.
	DropLog *DropLog `json:"dropLog,omitempty"`
}

// Namespace is a namespace and its labels.
type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Audit: the namespace is annotated AuditAnnotation: "true".
	Audit bool `json:"audit,omitempty"`
}

// Pod is what policy needs of a pod. Pods of this node get their IPs from
// CNI ADD (see Attachment); pods of other nodes carry status.podIPs here and
// act only as peers.
type Pod struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Node      string            `json:"node,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	IPs       []string          `json:"ips,omitempty"`
	Ports     []NamedPort       `json:"ports,omitempty"`
}

// Key is "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// NamedPort is a named container port of a pod.
type NamedPort struct {
	Name     string          `json:"name"`
	Protocol corev1.Protocol `json:"protocol"`
	Port     int32           `json:"port"`
}
