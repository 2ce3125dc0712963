package policy

import (
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/ipt"
)

// policyRules compiles the chain of one policy in direction d: one rule per
// (peer, port group) that the policy's rules allow. The chain is entered
// with -j from a group chain; an allowing rule does -g NETPOL-ALLOW, which
// clears the packet's pending mark and returns to the group chain.
func (c *compiler) policyRules(f ipt.Family, d Direction, cp *compiledPolicy) (ipt.Chain, error) {
	ch := ipt.Chain{Name: policyChain(d, cp.key)}
	type spec struct {
		peers []networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
	}
	var specs []spec
	if d == Ingress {
		for _, r := range cp.np.Spec.Ingress {
			specs = append(specs, spec{r.From, r.Ports})
		}
	} else {
		for _, r := range cp.np.Spec.Egress {
			specs = append(specs, spec{r.To, r.Ports})
		}
	}
	for i, sp := range specs {
		field := fmt.Sprintf("%s[%d]", d, i)
		peers, err := c.peerMatches(f, d, cp, field, sp.peers)
		if err != nil {
			return ch, err
		}
		ports := c.portMatches(f, sp.ports)
		comment := cp.key + " " + field
		for _, pm := range peers {
			for _, po := range ports {
				ms := append(append([]ipt.Match{}, po...), pm...)
				ch.Rules = append(ch.Rules, ipt.Rule{Matches: ms, Comment: comment, Verdict: ipt.Goto(ChainAllow)})
			}
		}
	}
	return ch, nil
}

// peerMatches returns one match list per peer of a rule, or a single empty
// list when the rule has no peers: "If this field is empty or missing, this
// rule matches all sources (traffic not restricted by source)". A rule whose
// peers are all of the other family matches nothing here (nil).
func (c *compiler) peerMatches(f ipt.Family, d Direction, cp *compiledPolicy, field string, peers []networkingv1.NetworkPolicyPeer) ([][]ipt.Match, error) {
	if len(peers) == 0 {
		return [][]ipt.Match{nil}, nil
	}
	var out [][]ipt.Match
	for j := range peers {
		peer := &peers[j]
		if peer.IPBlock != nil {
			if s := c.blockSet(f, peer.IPBlock); s != nil {
				out = append(out, []ipt.Match{ipt.SetMatch{Set: s.Name, Dir: peerDir(d)}})
			}
			continue
		}
		key, err := peerKey(cp.np.Namespace, peer)
		if err != nil {
			return nil, fmt.Errorf("networkpolicy %s: %s peer %d: %w", cp.key, field, j, err)
		}
		s := c.set(f, peerSet(f, key), ipt.HashIP, key)
		if _, ok := c.podSets[s.Name]; !ok {
			src, err := c.w.peerSource(cp.np.Namespace, peer)
			if err != nil {
				return nil, fmt.Errorf("networkpolicy %s: %s peer %d: %w", cp.key, field, j, err)
			}
			c.podSets[s.Name] = src
		}
		if c.seen[s.Name] == nil && !c.rulesOnly { // a peer shared by several policies is filled once
			pods, err := c.peerPods(key, cp.np.Namespace, peer)
			if err != nil {
				return nil, fmt.Errorf("networkpolicy %s: %s peer %d: %w", cp.key, field, j, err)
			}
			c.seen[s.Name] = map[string]bool{}
			for _, p := range pods {
				c.addPod(s, f, p, "")
			}
		}
		out = append(out, []ipt.Match{ipt.SetMatch{Set: s.Name, Dir: peerDir(d)}})
	}
	return out, nil
}

// peerPods returns the pods a selector peer selects, computed once per peer
// key for all families.
func (c *compiler) peerPods(key, policyNS string, peer *networkingv1.NetworkPolicyPeer) ([]*Pod, error) {
	if pods, ok := c.peerCache[key]; ok {
		return pods, nil
	}
	pods, err := c.w.peerPods(policyNS, peer)
	if err != nil {
		return nil, err
	}
	c.peerCache[key] = pods
	return pods, nil
}

// blockSet returns the hash:net set of an ipBlock in family f, or nil when
// the block is of the other family: an IPv4 block never matches IPv6
// traffic, nor an IPv6 block IPv4 traffic. "except is a slice of CIDRs that
// should not be included within an IPBlock": those entries are stored as
// nomatch, and since the most specific prefix decides, they carve holes in
// the CIDR. An except equal to a /1 half of a split /0 replaces that half
// (one entry cannot be both).
func (c *compiler) blockSet(f ipt.Family, b *networkingv1.IPBlock) *ipt.Set {
	fam, ok := ipFamily(b.CIDR)
	if !ok || fam != f {
		return nil
	}
	key := b.CIDR + " except " + strings.Join(b.Except, ",")
	s := c.set(f, blockSet(f, key), ipt.HashNet, key)
	if len(s.Members) > 0 {
		return s
	}
	excepted := map[string]bool{}
	for _, ex := range b.Except {
		for _, cidr := range splitZero(ex) {
			excepted[cidr] = true
		}
	}
	for _, cidr := range splitZero(b.CIDR) {
		if !excepted[cidr] {
			c.addMember(s, cidr, false)
		}
	}
	for _, ex := range b.Except {
		for _, cidr := range splitZero(ex) {
			c.addMember(s, cidr, true)
		}
	}
	return s
}

// splitZero returns cidr in canonical form; a /0 (which hash:net cannot
// hold) becomes its two /1 halves.
func splitZero(cidr string) []string {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return []string{cidr}
	}
	if ones, _ := n.Mask.Size(); ones > 0 {
		return []string{n.String()}
	}
	if n.IP.To4() != nil {
		return []string{"0.0.0.0/1", "128.0.0.0/1"}
	}
	return []string{"::/1", "8000::/1"}
}

// portMatches returns one match list per port group of a rule, or a single
// empty list when the rule has no ports: "If this field is empty or missing,
// this rule matches all ports". Numeric ports and ranges of one protocol share
// multiport matches; a named port matches the destination pods that declare
// it, through a hash:ip,port set.
func (c *compiler) portMatches(f ipt.Family, ports []networkingv1.NetworkPolicyPort) [][]ipt.Match {
	if len(ports) == 0 {
		return [][]ipt.Match{nil}
	}
	var out [][]ipt.Match
	ranges := map[corev1.Protocol][]ipt.PortRange{}
	allPorts := map[corev1.Protocol]bool{}
	var order []corev1.Protocol
	note := func(p corev1.Protocol) {
		if _, ok := ranges[p]; !ok && !allPorts[p] {
			order = append(order, p)
		}
	}
	for _, pp := range ports {
		proto := portProtocol(&pp)
		switch {
		case pp.Port == nil:
			note(proto)
			allPorts[proto] = true
		case pp.Port.Type == intstr.String:
			s := c.namedPort(f, proto, pp.Port.StrVal)
			out = append(out, []ipt.Match{protoMatch(proto), ipt.SetMatch{Set: s.Name, Dir: ipt.DstDst}})
		default:
			note(proto)
			r := ipt.PortRange{First: pp.Port.IntVal}
			if pp.EndPort != nil && *pp.EndPort > pp.Port.IntVal {
				r.Last = *pp.EndPort
			}
			ranges[proto] = append(ranges[proto], r)
		}
	}
	for _, proto := range order {
		if allPorts[proto] {
			out = append(out, []ipt.Match{protoMatch(proto)})
			continue
		}
		for _, chunk := range chunkPorts(ranges[proto]) {
			out = append(out, []ipt.Match{protoMatch(proto), ipt.DPorts{Proto: protoMatch(proto), Ports: chunk}})
		}
	}
	return out
}

func protoMatch(p corev1.Protocol) ipt.Protocol { return ipt.Protocol(strings.ToLower(string(p))) }

// chunkPorts splits ranges into groups that fit one multiport match, where a
// range takes two of its slots.
func chunkPorts(rs []ipt.PortRange) [][]ipt.PortRange {
	var out [][]ipt.PortRange
	var cur []ipt.PortRange
	used := 0
	for _, r := range rs {
		cost := 1
		if r.Last != 0 {
			cost = 2
		}
		if used+cost > ipt.MaxMultiport {
			out = append(out, cur)
			cur, used = nil, 0
		}
		cur = append(cur, r)
		used += cost
	}
	return append(out, cur)
}

// namedPort returns the set of address,proto:port entries of every pod that
// declares a container port named name with protocol proto. Named ports
// resolve on the pod receiving the traffic, which is the destination of the
// packet in both directions, so the set is matched as dst,dst.
func (c *compiler) namedPort(f ipt.Family, proto corev1.Protocol, name string) *ipt.Set {
	key := string(proto) + "/" + name
	s := c.set(f, namedPortSet(f, key), ipt.HashIPPort, key)
	c.podSets[s.Name] = podSetSource{proto: proto, port: name}
	if len(s.Members) > 0 || c.seen[s.Name] != nil || c.rulesOnly {
		return s
	}
	c.seen[s.Name] = map[string]bool{}
	for _, ns := range c.w.nsNames {
		for _, p := range c.w.podsByNS[ns] {
			for _, np := range p.Ports {
				if np.Name == name && ProtocolOrTCP(np.Protocol) == proto {
					c.addPod(s, f, p, fmt.Sprintf(",%s:%d", strings.ToLower(string(proto)), np.Port))
				}
			}
		}
	}
	return s
}
