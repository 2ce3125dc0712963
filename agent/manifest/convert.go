package manifest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/policy"
)

// Kinds and API versions Load accepts.
const (
	coreV1       = "v1"
	networkingV1 = "networking.k8s.io/v1"
)

// DefaultNamespace is the namespace of an object whose manifest names none.
const DefaultNamespace = "default"

// Builder converts Namespace, Pod and NetworkPolicy objects to a snapshot by
// the rules Load uses; it collects the objects of all files (or, for the
// Kubernetes API source, of the informer caches) before the snapshot is made.
// It does not validate: see policy.ValidateSnapshot.
type Builder struct {
	node string
	// bySniffedKind: decode every object by the kind a first pass over it
	// finds, never by guessedKinds (the reference of the differential test).
	bySniffedKind bool
	namespaces    []policy.Namespace
	pods          []policy.Pod
	policies      []networkingv1.NetworkPolicy
}

// NewBuilder returns an empty builder for node: a pod without
// spec.nodeName is taken as node's.
func NewBuilder(node string) *Builder { return &Builder{node: node} }

// list is a v1 List; its items are decoded one by one by kind.
type list struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []json.RawMessage `json:"items"`
}

// addObject decodes one object by its kind and apiVersion and adds it; loc
// says where it came from ("file: document 2: items[0]"). raw is one JSON
// value, nothing around it (as YAML converts, or a JSON decoder splits).
// When its bytes begin as a YAML document's JSON does for a Namespace, Pod
// or NetworkPolicy (guessedKind), it is decoded as that type straight
// away; when that succeeds and the decoded kind and apiVersion are the
// type's, the object is the one a decode by the sniffed kind makes (the
// same bytes, into the same type, by the same decoder; the sniff reads the
// same two fields, and fails only where the typed decode does), and the
// sniff's pass over the bytes is saved. Otherwise the object is decoded
// by its sniffed kind (addBySniffedKind), with that path's errors.
func (b *Builder) addObject(raw []byte, loc string) error {
	if !b.bySniffedKind && b.addGuessed(raw) {
		return nil
	}
	return b.addBySniffedKind(raw, loc)
}

// guessedKinds are the beginnings of the JSON that sigs.k8s.io/yaml makes
// of a YAML document (keys sorted) of the kinds most documents are.
var guessedKinds = []struct {
	prefix []byte
	kind   string
}{
	{[]byte(`{"apiVersion":"v1","kind":"Pod",`), "Pod"},
	{[]byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy",`), "NetworkPolicy"},
	{[]byte(`{"apiVersion":"v1","kind":"Namespace",`), "Namespace"},
}

// addGuessed decodes raw as the kind its beginning names (guessedKinds)
// and adds it, reporting whether it did: not when raw begins otherwise,
// the decode fails, or the decoded kind and apiVersion are not the type's.
func (b *Builder) addGuessed(raw []byte) bool {
	for _, g := range guessedKinds {
		if !bytes.HasPrefix(raw, g.prefix) {
			continue
		}
		switch g.kind {
		case "Pod":
			var pod corev1.Pod
			if decodeStrict(raw, &pod) != nil || pod.Kind != "Pod" || pod.APIVersion != coreV1 {
				return false
			}
			b.AddPod(&pod)
		case "NetworkPolicy":
			var np networkingv1.NetworkPolicy
			if decodeStrict(raw, &np) != nil || np.Kind != "NetworkPolicy" || np.APIVersion != networkingV1 {
				return false
			}
			np.ResourceVersion = "" // as addBySniffedKind
			b.AddPolicy(&np)
		case "Namespace":
			var ns corev1.Namespace
			if decodeStrict(raw, &ns) != nil || ns.Kind != "Namespace" || ns.APIVersion != coreV1 {
				return false
			}
			b.AddNamespace(&ns)
		}
		return true
	}
	return false
}

// addBySniffedKind decodes raw's kind and apiVersion, then raw as that
// kind, and adds it.
func (b *Builder) addBySniffedKind(raw []byte, loc string) error {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return fmt.Errorf("%s: not a Kubernetes object: %w", loc, err)
	}
	switch {
	case tm.Kind == "Namespace" && tm.APIVersion == coreV1:
		var ns corev1.Namespace
		if err := decodeStrict(raw, &ns); err != nil {
			return fmt.Errorf("%s: kind Namespace: %w", loc, err)
		}
		b.AddNamespace(&ns)
	case tm.Kind == "Pod" && tm.APIVersion == coreV1:
		var pod corev1.Pod
		if err := decodeStrict(raw, &pod); err != nil {
			return fmt.Errorf("%s: kind Pod: %w", loc, err)
		}
		b.AddPod(&pod)
	case tm.Kind == "NetworkPolicy" && tm.APIVersion == networkingV1:
		var np networkingv1.NetworkPolicy
		if err := decodeStrict(raw, &np); err != nil {
			return fmt.Errorf("%s: kind NetworkPolicy: %w", loc, err)
		}
		// A manifest's policy is versioned by its content (policy.Version),
		// not by a resourceVersion copied from some cluster.
		np.ResourceVersion = ""
		b.AddPolicy(&np)
	case tm.Kind == "List" && tm.APIVersion == coreV1:
		var l list
		if err := decodeStrict(raw, &l); err != nil {
			return fmt.Errorf("%s: kind List: %w", loc, err)
		}
		for i, item := range l.Items {
			if err := b.addObject(item, fmt.Sprintf("%s: items[%d]", loc, i)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: unsupported kind %q with apiVersion %q "+
			"(want v1 Namespace, Pod or List, or networking.k8s.io/v1 NetworkPolicy)", loc, tm.Kind, tm.APIVersion)
	}
	return nil
}

// AddNamespace adds ConvertNamespace(ns).
func (b *Builder) AddNamespace(ns *corev1.Namespace) {
	b.namespaces = append(b.namespaces, ConvertNamespace(ns))
}

// AddPod adds ConvertPod(pod, node) for the builder's node.
func (b *Builder) AddPod(pod *corev1.Pod) { b.pods = append(b.pods, ConvertPod(pod, b.node)) }

// AddConvertedPod adds p, made by ConvertPod, as it is (the caller gave it
// its node).
func (b *Builder) AddConvertedPod(p policy.Pod) { b.pods = append(b.pods, p) }

// AddPolicy adds ConvertPolicy(np).
func (b *Builder) AddPolicy(np *networkingv1.NetworkPolicy) {
	b.policies = append(b.policies, ConvertPolicy(np))
}

// ConvertNamespace keeps a namespace's name and labels, plus the label the
// API server sets on every namespace (policy.NamespaceLabels), and whether
// it is annotated for audit (policy.AuditAnnotation).
func ConvertNamespace(ns *corev1.Namespace) policy.Namespace {
	return policy.Namespace{Name: ns.Name, Labels: policy.NamespaceLabels(ns.Name, ns.Labels),
		Audit: policy.AuditOn(ns.Annotations)}
}

// ConvertPod keeps what policy needs of a pod: labels, IPs, node (node when
// the pod names none) and the named ports of its containers, an empty
// protocol made TCP (policy.ProtocolOrTCP).
func ConvertPod(pod *corev1.Pod, node string) policy.Pod {
	p := policy.Pod{
		Namespace: cmp.Or(pod.Namespace, DefaultNamespace),
		Name:      pod.Name,
		Node:      cmp.Or(pod.Spec.NodeName, node),
		Labels:    nilIfEmpty(pod.Labels),
	}
	for _, ip := range pod.Status.PodIPs {
		p.IPs = append(p.IPs, ip.IP)
	}
	if len(p.IPs) == 0 && pod.Status.PodIP != "" {
		p.IPs = []string{pod.Status.PodIP}
	}
	for _, c := range pod.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "" {
				continue
			}
			p.Ports = append(p.Ports, policy.NamedPort{
				Name:     port.Name,
				Protocol: policy.ProtocolOrTCP(port.Protocol),
				Port:     port.ContainerPort,
			})
		}
	}
	return p
}

// ConvertPolicy keeps a NetworkPolicy's spec as it is, with metadata
// trimmed to namespace, name, labels and resourceVersion (the version
// reported in force, see policy.Version).
func ConvertPolicy(np *networkingv1.NetworkPolicy) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       cmp.Or(np.Namespace, DefaultNamespace),
			Name:            np.Name,
			Labels:          nilIfEmpty(np.Labels),
			ResourceVersion: np.ResourceVersion,
		},
		Spec: np.Spec,
	}
}

// nilIfEmpty returns nil for an empty map so equal inputs give equal output.
func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// Snapshot adds the namespaces that pods and policies name but no manifest
// declares, and sorts everything by key.
func (b *Builder) Snapshot() *policy.Snapshot {
	declared := map[string]bool{}
	for _, ns := range b.namespaces {
		declared[ns.Name] = true
	}
	namespaces := slices.Clone(b.namespaces)
	addImplicit := func(name string) {
		if !declared[name] {
			declared[name] = true
			namespaces = append(namespaces, policy.Namespace{Name: name, Labels: policy.NamespaceLabels(name, nil)})
		}
	}
	for _, p := range b.pods {
		addImplicit(p.Namespace)
	}
	for _, np := range b.policies {
		addImplicit(np.Namespace)
	}
	slices.SortStableFunc(namespaces, func(x, y policy.Namespace) int { return cmp.Compare(x.Name, y.Name) })
	pods := slices.Clone(b.pods)
	slices.SortStableFunc(pods, func(x, y policy.Pod) int { return compareKeys(&x, &y) })
	policies := slices.Clone(b.policies)
	slices.SortStableFunc(policies, func(x, y networkingv1.NetworkPolicy) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	return &policy.Snapshot{
		Version:    policy.SnapshotVersion,
		Node:       b.node,
		Namespaces: namespaces,
		Pods:       pods,
		Policies:   policies,
	}
}

// compareKeys is cmp.Compare(x.Key(), y.Key()) without building the keys
// (namespace "/" name).
func compareKeys(x, y *policy.Pod) int {
	if x.Namespace == y.Namespace {
		return cmp.Compare(x.Name, y.Name)
	}
	n := min(len(x.Namespace), len(y.Namespace))
	for i := range n {
		if x.Namespace[i] != y.Namespace[i] {
			return cmp.Compare(x.Namespace[i], y.Namespace[i])
		}
	}
	// One namespace is a prefix of the other: the shorter's key has "/"
	// where the longer's has its next byte.
	if len(x.Namespace) < len(y.Namespace) && y.Namespace[n] != '/' {
		return cmp.Compare(byte('/'), y.Namespace[n])
	}
	if len(y.Namespace) < len(x.Namespace) && x.Namespace[n] != '/' {
		return cmp.Compare(x.Namespace[n], byte('/'))
	}
	return cmp.Compare(x.Key(), y.Key())
}
