package policy

import (
	"fmt"
	"net"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/policy/node"
)

// Evaluation is the answer to "would this connection be allowed, and why".
type Evaluation struct {
	Allowed bool
	Egress  Side // the source pod's egress policies
	Ingress Side // the destination pod's ingress policies
}

// Side is the decision of one direction.
type Side struct {
	Pod      string   // namespace/name, or "" when that end is not a pod
	Isolated bool     // at least one policy selects the pod in this direction
	Policies []string // the policies that select it in this direction
	Verdict  Verdict
}

// Connection is what Evaluate judges: the first packet of a connection.
type Connection struct {
	From, To string // IP addresses
	Protocol corev1.Protocol
	Port     int32
}

// Evaluate decides a connection from the NetworkPolicy specification alone,
// independently of Compile (it shares no selection code with it), so the two
// can be checked against each other. Addresses are resolved to pods: a local
// pod's from the attachments, a remote pod's from its status IPs. An
// attachment the snapshot does not know is admitted as the plugin admits it
// (see Index.Admit). It shares with Compile only the defaults of
// defaults.go and that admission.
func Evaluate(s *Snapshot, atts []Attachment, c Connection) Evaluation {
	e := newEvaluator(s, atts)
	if noPodIPv6(c.From) || noPodIPv6(c.To) {
		// Dropped in NETPOL-FORWARD before the hairpin rule and any policy.
		return Evaluation{
			Egress:  Side{Verdict: Verdict{Reason: LinkLocalOrMulticast, Direction: Egress}},
			Ingress: Side{Verdict: Verdict{Reason: LinkLocalOrMulticast, Direction: Ingress}}}
	}
	if c.From == c.To {
		// Sent to its own address it stays in the pod; through a Service it
		// is hairpinned on its bridge port and crosses FORWARD.
		return Evaluation{Allowed: true,
			Egress:  Side{Verdict: Verdict{Reason: OwnAddress, Direction: Egress}},
			Ingress: Side{Verdict: Verdict{Reason: OwnAddress, Direction: Ingress}}}
	}
	v := Evaluation{
		Egress:  e.side(Egress, c.From, c.To, c),
		Ingress: e.side(Ingress, c.To, c.From, c),
	}
	v.Allowed = v.Egress.Verdict.Allowed() && v.Ingress.Verdict.Allowed()
	return v
}

type evaluator struct {
	s       *Snapshot
	byIP    map[string]*Pod
	unknown map[string]*Attachment // address -> attachment of a pod the snapshot lacks
}

func newEvaluator(s *Snapshot, atts []Attachment) *evaluator {
	e := &evaluator{s: s, byIP: map[string]*Pod{}, unknown: map[string]*Attachment{}}
	recorded := map[string][]string{}
	for _, a := range atts {
		recorded[a.PodKey()] = append(recorded[a.PodKey()], a.IPs...)
	}
	known := map[string]bool{}
	for i := range s.Pods {
		p := s.Pods[i]
		if s.IsLocal(&p) {
			p.IPs = recorded[p.Key()] // only what CNI ADD recorded, as Compile
			known[p.Key()] = true
		}
		for _, ip := range p.IPs {
			e.byIP[canonicalIP(ip)] = &p
		}
	}
	for i := range atts {
		if !known[atts[i].PodKey()] {
			for _, ip := range atts[i].IPs {
				e.unknown[canonicalIP(ip)] = &atts[i]
			}
		}
	}
	return e
}

// side decides direction d for the pod at self, talking to peer.
func (e *evaluator) side(d Direction, self, peer string, c Connection) Side {
	if a := e.unknown[canonicalIP(self)]; a != nil {
		isolated := false
		for i := range e.s.Policies {
			isolated = isolated || e.s.Policies[i].Namespace == a.Namespace
		}
		v := node.Admission(true, false, isolated)
		v.Direction = d
		return Side{Pod: a.PodKey(), Isolated: isolated, Verdict: v}
	}
	pod := e.byIP[canonicalIP(self)]
	if pod == nil {
		return Side{Verdict: Verdict{Reason: NotAPod, Direction: d}}
	}
	out := Side{Pod: pod.Key()}
	var allowedBy []string
	for i := range e.s.Policies {
		np := &e.s.Policies[i]
		if np.Namespace != pod.Namespace || !policyAppliesTo(np, d) || !selectorMatches(&np.Spec.PodSelector, pod.Labels) {
			continue
		}
		key := np.Namespace + "/" + np.Name
		out.Policies = append(out.Policies, key)
		for j, rule := range rulesOf(np, d) {
			if e.peersMatch(np.Namespace, rule.peers, peer) && e.portsMatch(rule.ports, c) {
				allowedBy = append(allowedBy, fmt.Sprintf("%s %s[%d]", key, d, j))
			}
		}
	}
	sort.Strings(out.Policies)
	out.Isolated = len(out.Policies) > 0
	switch {
	case !out.Isolated:
		out.Verdict = Verdict{Reason: NotSelected, Direction: d}
	case len(allowedBy) > 0:
		out.Verdict = Verdict{Reason: AllowedByRule, Direction: d, Keys: allowedBy}
	case e.s.Audited(pod.Namespace):
		out.Verdict = Verdict{Reason: WouldDeny, Direction: d, Keys: out.Policies}
	default:
		out.Verdict = Verdict{Reason: NoRuleAllows, Direction: d, Keys: out.Policies}
	}
	return out
}

// policyAppliesTo is the policyTypes defaulting, stated independently of
// Compile's.
func policyAppliesTo(np *networkingv1.NetworkPolicy, d Direction) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return d == Ingress || len(np.Spec.Egress) > 0
	}
	want := networkingv1.PolicyTypeIngress
	if d == Egress {
		want = networkingv1.PolicyTypeEgress
	}
	for _, t := range np.Spec.PolicyTypes {
		if t == want {
			return true
		}
	}
	return false
}

type ruleView struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

func rulesOf(np *networkingv1.NetworkPolicy, d Direction) []ruleView {
	var out []ruleView
	if d == Ingress {
		for _, r := range np.Spec.Ingress {
			out = append(out, ruleView{r.From, r.Ports})
		}
		return out
	}
	for _, r := range np.Spec.Egress {
		out = append(out, ruleView{r.To, r.Ports})
	}
	return out
}

// peersMatch: an empty list matches everyone; otherwise any peer may match.
func (e *evaluator) peersMatch(policyNS string, peers []networkingv1.NetworkPolicyPeer, addr string) bool {
	if len(peers) == 0 {
		return true
	}
	for i := range peers {
		if e.peerMatches(policyNS, &peers[i], addr) {
			return true
		}
	}
	return false
}

func (e *evaluator) peerMatches(policyNS string, peer *networkingv1.NetworkPolicyPeer, addr string) bool {
	if b := peer.IPBlock; b != nil {
		return inBlock(addr, b)
	}
	pod := e.byIP[canonicalIP(addr)]
	if pod == nil {
		return false
	}
	if peer.NamespaceSelector == nil {
		return pod.Namespace == policyNS && selectorMatches(peer.PodSelector, pod.Labels)
	}
	if !selectorMatches(peer.NamespaceSelector, e.namespaceLabels(pod.Namespace)) {
		return false
	}
	return peer.PodSelector == nil || selectorMatches(peer.PodSelector, pod.Labels)
}

func (e *evaluator) namespaceLabels(name string) map[string]string {
	for _, ns := range e.s.Namespaces {
		if ns.Name == name {
			return NamespaceLabels(name, ns.Labels)
		}
	}
	return NamespaceLabels(name, nil)
}

// portsMatch: an empty list matches every port; a named port is looked up on
// the destination pod.
func (e *evaluator) portsMatch(ports []networkingv1.NetworkPolicyPort, c Connection) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := portProtocol(&p)
		if proto != c.Protocol {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.String:
			if dst := e.byIP[canonicalIP(c.To)]; dst != nil && namedPortIs(dst, p.Port.StrVal, proto, c.Port) {
				return true
			}
		default:
			last := p.Port.IntVal
			if p.EndPort != nil {
				last = *p.EndPort
			}
			if c.Port >= p.Port.IntVal && c.Port <= last {
				return true
			}
		}
	}
	return false
}

func namedPortIs(p *Pod, name string, proto corev1.Protocol, port int32) bool {
	for _, np := range p.Ports {
		if np.Name == name && ProtocolOrTCP(np.Protocol) == proto && np.Port == port {
			return true
		}
	}
	return false
}

func selectorMatches(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false // invalid selectors are rejected by ValidateSnapshot first
	}
	return s.Matches(labels.Set(set))
}

func inBlock(addr string, b *networkingv1.IPBlock) bool {
	ip := net.ParseIP(addr)
	_, cidr, err := net.ParseCIDR(b.CIDR)
	if ip == nil || err != nil || !cidr.Contains(ip) {
		return false
	}
	for _, ex := range b.Except {
		if _, n, err := net.ParseCIDR(ex); err == nil && n.Contains(ip) {
			return false
		}
	}
	return true
}

func canonicalIP(s string) string { return node.CanonicalIP(s) }

// noPodIPv6 reports whether addr is an IPv6 link-local unicast or a
// multicast address: no pod's (see node.FixedChains).
func noPodIPv6(addr string) bool {
	ip := net.ParseIP(addr)
	return ip != nil && ip.To4() == nil && (ip.IsLinkLocalUnicast() || ip.IsMulticast())
}
