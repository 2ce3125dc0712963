// Package policytest generates random NetworkPolicy scenarios for the
// differential tests: random namespace and pod labels, named ports that map
// to different numbers on different pods, and random policies (selectors with
// expressions, ipBlocks over pod addresses with excepts, ports, named ports,
// endPort, ingress and egress). The same seed always gives the same scenario.
package policytest

import (
	"fmt"
	"math/rand"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/netpol/netpol/policy"
)

// Namespaces are the namespaces every scenario uses.
var Namespaces = []string{"x", "y", "z"}

// PodRef names a pod of the scenario and its addresses: an IPv4 one, an
// IPv6 one, or one of each (dual-stack).
type PodRef struct {
	Namespace, Name string
	IPs             []string
}

// Family is the kind of world a scenario is drawn over.
type Family string

// The families of worlds: every pod IPv4-only, every pod IPv6-only, or a
// mix of dual-stack, IPv4-only and IPv6-only pods.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
	Dual Family = "dual"
)

// Families lists every Family.
var Families = []Family{IPv4, IPv6, Dual}

// Addresses returns the addresses of the i-th pod of a world of family f
// on the node numbered node: 10.244.node.(2+i) and/or fd00:10:244:node::(2+i)
// (hex). In a dual world pods 0 and 3 are IPv4-only, 1 and 4 IPv6-only,
// the others dual-stack.
func Addresses(f Family, node, i int) []string {
	v4 := fmt.Sprintf("10.244.%d.%d", node, 2+i)
	v6 := fmt.Sprintf("fd00:10:244:%x::%x", node, 2+i)
	switch {
	case f == IPv4 || (f == Dual && i%3 == 0):
		return []string{v4}
	case f == IPv6 || (f == Dual && i%3 == 1):
		return []string{v6}
	}
	return []string{v4, v6}
}

// Pairs returns the addresses from can send to to: those of each family
// both have, as (source, destination) pairs.
func Pairs(from, to PodRef) [][2]string {
	var out [][2]string
	for _, a := range from.IPs {
		for _, b := range to.IPs {
			if strings.Contains(a, ":") == strings.Contains(b, ":") {
				out = append(out, [2]string{a, b})
			}
		}
	}
	return out
}

// Ports are the (protocol, port) pairs the scenarios are probed on.
var Ports = []struct {
	Protocol corev1.Protocol
	Port     int32
}{{corev1.ProtocolTCP, 80}, {corev1.ProtocolTCP, 81}, {corev1.ProtocolUDP, 80}}

// Scenario draws a snapshot for node over the given pods (their addresses
// fixed by the caller, e.g. by CNI) with 1 to 3 random policies.
func Scenario(seed int64, node string, pods []PodRef) *policy.Snapshot {
	r := rand.New(rand.NewSource(seed))
	s := &policy.Snapshot{Version: policy.SnapshotVersion, Node: node}
	for _, ns := range Namespaces {
		s.Namespaces = append(s.Namespaces, policy.Namespace{Name: ns, Labels: randomLabels(r, nsLabels)})
	}
	for _, p := range pods {
		web, dns := int32(80+r.Intn(2)), int32(80+r.Intn(2))
		s.Pods = append(s.Pods, policy.Pod{
			Namespace: p.Namespace, Name: p.Name, Node: node, Labels: randomLabels(r, podLabels),
			Ports: []policy.NamedPort{
				{Name: "web", Protocol: corev1.ProtocolTCP, Port: web},
				{Name: "dns", Protocol: corev1.ProtocolUDP, Port: dns},
			},
		})
	}
	g := &gen{r: r, pods: pods}
	for i, n := 0, 1+r.Intn(3); i < n; i++ {
		s.Policies = append(s.Policies, g.policy(fmt.Sprintf("p%d", i)))
	}
	return s
}

var (
	nsLabels  = map[string][]string{"team": {"a", "b"}, "env": {"dev", "prod"}}
	podLabels = map[string][]string{"app": {"a", "b", "c"}, "tier": {"web", "db"}}
)

func randomLabels(r *rand.Rand, vocab map[string][]string) map[string]string {
	out := map[string]string{}
	for _, k := range sortedKeys(vocab) {
		if r.Intn(3) > 0 {
			vals := vocab[k]
			out[k] = vals[r.Intn(len(vals))]
		}
	}
	return out
}

type gen struct {
	r    *rand.Rand
	pods []PodRef
}

func (g *gen) policy(name string) networkingv1.NetworkPolicy {
	np := networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespaces[g.r.Intn(len(Namespaces))]},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: *g.selector(podLabels, true)},
	}
	switch g.r.Intn(4) {
	case 0: // defaulted
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	default:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	for i, n := 0, g.r.Intn(3); i < n; i++ {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: g.peers(), Ports: g.ports()})
	}
	for i, n := 0, g.r.Intn(3); i < n; i++ {
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: g.peers(), Ports: g.ports()})
	}
	return np
}

// selector draws matchLabels and/or matchExpressions over vocab; it may be
// empty (select everything) when allowEmpty.
func (g *gen) selector(vocab map[string][]string, allowEmpty bool) *metav1.LabelSelector {
	sel := &metav1.LabelSelector{}
	keys := sortedKeys(vocab)
	for tries := 0; tries < 3; tries++ {
		if len(sel.MatchLabels)+len(sel.MatchExpressions) > 0 && g.r.Intn(2) == 0 {
			break
		}
		if allowEmpty && tries == 0 && g.r.Intn(4) == 0 {
			break
		}
		k := keys[g.r.Intn(len(keys))]
		vals := vocab[k]
		switch g.r.Intn(5) {
		case 0:
			if sel.MatchLabels == nil {
				sel.MatchLabels = map[string]string{}
			}
			sel.MatchLabels[k] = vals[g.r.Intn(len(vals))]
		case 1:
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: k, Operator: metav1.LabelSelectorOpIn, Values: []string{vals[g.r.Intn(len(vals))]}})
		case 2:
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: k, Operator: metav1.LabelSelectorOpNotIn, Values: []string{vals[g.r.Intn(len(vals))]}})
		case 3:
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpExists})
		default:
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpDoesNotExist})
		}
	}
	return sel
}

func (g *gen) peers() []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for i, n := 0, g.r.Intn(3); i < n; i++ {
		switch g.r.Intn(4) {
		case 0:
			out = append(out, networkingv1.NetworkPolicyPeer{PodSelector: g.selector(podLabels, true)})
		case 1:
			out = append(out, networkingv1.NetworkPolicyPeer{NamespaceSelector: g.selector(nsLabels, true)})
		case 2:
			out = append(out, networkingv1.NetworkPolicyPeer{
				PodSelector: g.selector(podLabels, true), NamespaceSelector: g.selector(nsLabels, true)})
		default:
			out = append(out, networkingv1.NetworkPolicyPeer{IPBlock: g.block()})
		}
	}
	return out
}

// block is an ipBlock over the address of a random pod: its host prefix
// (/32 or /128); its /24 or /64 with one or two pods of that family
// excepted; or all of its family (/0), with a /1 half or a pod excepted or
// nothing.
func (g *gen) block() *networkingv1.IPBlock {
	p := g.pods[g.r.Intn(len(g.pods))]
	addr := netip.MustParseAddr(p.IPs[g.r.Intn(len(p.IPs))])
	host := netip.PrefixFrom(addr, addr.BitLen())
	switch g.r.Intn(5) {
	case 0, 1:
		return &networkingv1.IPBlock{CIDR: host.String()}
	case 2, 3:
		bits := 24
		if addr.Is6() {
			bits = 64
		}
		sub := netip.PrefixFrom(addr, bits).Masked()
		b := &networkingv1.IPBlock{CIDR: sub.String()}
		for i, n := 0, 1+g.r.Intn(2); i < n; i++ {
			b.Except = append(b.Except, g.hostIn(sub).String())
		}
		return b
	}
	all := netip.PrefixFrom(addr, 0).Masked()
	b := &networkingv1.IPBlock{CIDR: all.String()}
	switch g.r.Intn(3) {
	case 0:
		b.Except = []string{netip.PrefixFrom(addr, 1).Masked().String()}
	case 1:
		b.Except = []string{g.hostIn(all).String()}
	}
	return b
}

// hostIn returns the host prefix of a random pod address inside block;
// there is at least one, the address the block was made from.
func (g *gen) hostIn(block netip.Prefix) netip.Prefix {
	var hosts []netip.Addr
	for _, p := range g.pods {
		for _, ip := range p.IPs {
			if a := netip.MustParseAddr(ip); block.Contains(a) {
				hosts = append(hosts, a)
			}
		}
	}
	a := hosts[g.r.Intn(len(hosts))]
	return netip.PrefixFrom(a, a.BitLen())
}

func (g *gen) ports() []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for i, n := 0, g.r.Intn(3); i < n; i++ {
		var p networkingv1.NetworkPolicyPort
		proto := []corev1.Protocol{"", corev1.ProtocolTCP, corev1.ProtocolUDP}[g.r.Intn(3)]
		if proto != "" {
			p.Protocol = &proto
		}
		switch g.r.Intn(5) {
		case 0: // all ports of the protocol
		case 1, 2:
			v := intstr.FromInt32(int32(80 + g.r.Intn(2)))
			p.Port = &v
		case 3:
			v := intstr.FromString([]string{"web", "dns"}[g.r.Intn(2)])
			p.Port = &v
		default:
			v, end := intstr.FromInt32(79+int32(g.r.Intn(2))), int32(80+g.r.Intn(2))
			p.Port, p.EndPort = &v, &end
		}
		out = append(out, p)
	}
	return out
}

// Manifests renders a snapshot as the manifests the agent reads
// (Namespaces, Pods with named container ports, NetworkPolicies).
func Manifests(s *policy.Snapshot) ([]byte, error) {
	var docs []any
	for _, ns := range s.Namespaces {
		docs = append(docs, corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels}})
	}
	for _, p := range s.Pods {
		c := corev1.Container{Name: "c", Image: "none"}
		for _, np := range p.Ports {
			c.Ports = append(c.Ports, corev1.ContainerPort{Name: np.Name, Protocol: np.Protocol, ContainerPort: np.Port})
		}
		docs = append(docs, corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
			Spec:       corev1.PodSpec{NodeName: p.Node, Containers: []corev1.Container{c}}})
	}
	for _, np := range s.Policies {
		np.TypeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}
		docs = append(docs, np)
	}
	var b strings.Builder
	for _, d := range docs {
		y, err := yaml.Marshal(d)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return []byte(b.String()), nil
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
