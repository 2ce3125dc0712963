package policy

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netpol/netpol/ipt"
)

// world is the snapshot indexed for selection: namespaces by name, pods by
// namespace, and parsed selectors cached by their canonical string.
type world struct {
	namespaces map[string]*Namespace
	nsNames    []string          // sorted
	podsByNS   map[string][]*Pod // each sorted by name
	selectors  map[*metav1.LabelSelector]labels.Selector
}

func newWorld(s *Snapshot, pods []*Pod) *world {
	w := &world{
		namespaces: map[string]*Namespace{},
		podsByNS:   map[string][]*Pod{},
		selectors:  map[*metav1.LabelSelector]labels.Selector{},
	}
	for i := range s.Namespaces {
		ns := &s.Namespaces[i]
		w.namespaces[ns.Name] = ns
		w.nsNames = append(w.nsNames, ns.Name)
	}
	for _, p := range pods {
		if _, ok := w.namespaces[p.Namespace]; !ok {
			ns := &Namespace{Name: p.Namespace}
			w.namespaces[p.Namespace] = ns
			w.nsNames = append(w.nsNames, p.Namespace)
		}
		w.podsByNS[p.Namespace] = append(w.podsByNS[p.Namespace], p)
	}
	sort.Strings(w.nsNames)
	for _, list := range w.podsByNS {
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	}
	return w
}

// selector parses sel once. A nil selector selects nothing here; callers
// decide what an absent selector means before asking.
func (w *world) selector(sel *metav1.LabelSelector) (labels.Selector, error) {
	if s, ok := w.selectors[sel]; ok {
		return s, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	w.selectors[sel] = s
	return s, nil
}

// nsLabels returns the labels of a namespace, defaulted by NamespaceLabels.
func (w *world) nsLabels(name string) labels.Set {
	var own map[string]string
	if ns := w.namespaces[name]; ns != nil {
		own = ns.Labels
	}
	return NamespaceLabels(name, own)
}

// selectedPods returns the pods of namespace ns that podSelector selects:
// "the pods to which this NetworkPolicy object applies ... An empty
// podSelector selects all pods in this namespace."
func (w *world) selectedPods(ns string, podSelector *metav1.LabelSelector) ([]*Pod, error) {
	sel, err := w.selector(podSelector)
	if err != nil {
		return nil, err
	}
	var out []*Pod
	for _, p := range w.podsByNS[ns] {
		if sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

// peerPods returns the pods a selector peer of a policy in namespace
// policyNS selects:
//   - podSelector alone: "selects particular Pods in the same namespace as the
//     NetworkPolicy";
//   - namespaceSelector alone: "selects all Pods in the Namespaces selected";
//   - both: "selects particular Pods within particular Namespaces" (AND).
func (w *world) peerPods(policyNS string, peer *networkingv1.NetworkPolicyPeer) ([]*Pod, error) {
	src, err := w.peerSource(policyNS, peer)
	if err != nil {
		return nil, err
	}
	var out []*Pod
	for _, ns := range w.nsNames {
		if src.nsSel == nil && ns != src.ns || src.nsSel != nil && !src.nsSel.Matches(w.nsLabels(ns)) {
			continue
		}
		for _, p := range w.podsByNS[ns] {
			if src.podSel.Matches(labels.Set(p.Labels)) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// podSetSource is how a peer or named-port set is filled: the pods a
// selector peer selects (ns, or nsSel when the peer has a
// namespaceSelector; podSel), or the pods declaring the named port
// proto/port.
type podSetSource struct {
	ns     string
	nsSel  labels.Selector
	podSel labels.Selector
	proto  corev1.Protocol
	port   string
}

// peerSource parses a selector peer of a policy in namespace policyNS
// (see peerPods for what it selects).
func (w *world) peerSource(policyNS string, peer *networkingv1.NetworkPolicyPeer) (podSetSource, error) {
	if peer.NamespaceSelector == nil {
		sel, err := w.selector(peer.PodSelector)
		return podSetSource{ns: policyNS, podSel: sel}, err
	}
	nsSel, err := w.selector(peer.NamespaceSelector)
	if err != nil {
		return podSetSource{}, err
	}
	podSel := labels.Everything()
	if peer.PodSelector != nil {
		if podSel, err = w.selector(peer.PodSelector); err != nil {
			return podSetSource{}, err
		}
	}
	return podSetSource{nsSel: nsSel, podSel: podSel}, nil
}

// entries returns the members pod p (with its addresses of family f)
// has in a set filled from src, as Compile's addPod makes them; nsLabels
// are the labels of p's namespace (NamespaceLabels).
func (src *podSetSource) entries(p *Pod, f ipt.Family, nsLabels labels.Set) []string {
	var suffixes []string
	switch {
	case src.podSel == nil:
		for _, np := range p.Ports {
			if np.Name == src.port && ProtocolOrTCP(np.Protocol) == src.proto {
				suffixes = append(suffixes, fmt.Sprintf(",%s:%d", strings.ToLower(string(src.proto)), np.Port))
			}
		}
	case src.nsSel == nil && p.Namespace == src.ns, src.nsSel != nil && src.nsSel.Matches(nsLabels):
		if src.podSel.Matches(labels.Set(p.Labels)) {
			suffixes = []string{""}
		}
	}
	var out []string
	for _, ip := range p.IPs {
		if fam, ok := ipFamily(ip); ok && fam == f {
			for _, sfx := range suffixes {
				out = append(out, ip+sfx)
			}
		}
	}
	return out
}

// peerKey is the canonical identity of a selector peer: two peers with the
// same key select the same pods and share one set.
func peerKey(policyNS string, peer *networkingv1.NetworkPolicyPeer) (string, error) {
	pod := ""
	if peer.PodSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
		if err != nil {
			return "", fmt.Errorf("podSelector: %w", err)
		}
		pod = s.String()
	}
	if peer.NamespaceSelector == nil {
		return "ns=" + policyNS + " pod=" + pod, nil
	}
	s, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
	if err != nil {
		return "", fmt.Errorf("namespaceSelector: %w", err)
	}
	return "nssel=" + s.String() + " pod=" + pod, nil
}
