package node

import (
	"slices"
	"sort"

	"github.com/netpol/netpol/ipt"
)

// Skeleton is the desired state of a node whose agent has never synced:
// per family the FORWARD hook, the fixed chains, the dispatch chains with
// only their fail-closed DENY rule, and every address of atts (after
// OwnAddresses) in the DENY set: nothing is known, so nothing is trusted.
// The plugin installs it on ADD when there is no index yet; each ADD
// installs it whole, so atts must be every recorded attachment. dl is how
// its drops are logged. It is exactly what policy.Compile gives for a
// snapshot with no pod and no policy and these attachments unknown.
func Skeleton(atts []Attachment, dl DropLog) ([]ipt.Ruleset, error) {
	if err := dl.Validate(); err != nil {
		return nil, err
	}
	atts = OwnAddresses(atts)
	var out []ipt.Ruleset
	for _, f := range ipt.Families {
		chains := FixedChains(f, dl)
		chains = append(chains, DispatchHead(f, Ingress, dl)...)
		chains = append(chains, DispatchHead(f, Egress, dl)...)
		sort.Slice(chains, func(i, j int) bool { return chains[i].Name < chains[j].Name })
		sets := FixedSets(f)
		deny := &sets[0]
		for _, a := range atts {
			for _, ip := range a.IPs {
				if fam, ok := AddressFamily(ip); ok && fam == f && !slices.ContainsFunc(deny.Members,
					func(m ipt.Member) bool { return m.Entry == ip }) {
					deny.Members = append(deny.Members, ipt.Member{Entry: ip})
				}
			}
		}
		sort.Slice(deny.Members, func(i, j int) bool { return deny.Members[i].Entry < deny.Members[j].Entry })
		sort.Slice(sets, func(i, j int) bool { return sets[i].Name < sets[j].Name })
		out = append(out, ipt.Ruleset{Family: f, Hooks: Hooks(), Chains: chains, Sets: sets})
	}
	return out, nil
}

// Hooks are the rules netpol owns in built-in chains: one, first in
// FORWARD, jumping to ChainForward.
func Hooks() []ipt.Hook {
	return []ipt.Hook{{
		Chain:    ipt.Forward,
		Position: 1,
		Rule:     ipt.Rule{Comment: "netpol: NetworkPolicy enforcement", Verdict: ipt.Jump(ChainForward)},
	}}
}

// FixedSets are the sets of family f that every node has, whatever its
// policies: the DENY set first, empty (its members are the pods not known
// yet), and in IPv6 NoPodSet with fe80::/10 and ff00::/8.
func FixedSets(f ipt.Family) []ipt.Set {
	sets := []ipt.Set{{Name: DenySet(f), Type: ipt.HashIP, Family: f, Comment: "pods whose policies are not known yet (fail closed)"}}
	if f == ipt.IPv6 {
		sets = append(sets, ipt.Set{Name: NoPodSet, Type: ipt.HashNet, Family: f,
			Comment: "IPv6 link-local and multicast addresses: no pod's set holds them",
			Members: []ipt.Member{{Entry: "fe80::/10"}, {Entry: "ff00::/8"}}})
	}
	return sets
}

// DispatchHead is the dispatch chain of direction d (ChainIngress or
// ChainEgress) as far as every node has it, the fail-closed rule that sends
// a pod in the DENY set to DenyChain(d), and that chain, which logs and
// drops. policy.Compile appends the rule that finds an isolated pod's group.
func DispatchHead(f ipt.Family, d Direction, dl DropLog) []ipt.Chain {
	name := ChainIngress
	if d == Egress {
		name = ChainEgress
	}
	top := ipt.Chain{Name: name, Rules: []ipt.Rule{{
		Matches: []ipt.Match{ipt.SetMatch{Set: DenySet(f), Dir: DispatchDir(d)}},
		Comment: "fail closed: pod not known to netpol yet",
		Verdict: ipt.Goto(ipt.Target(DenyChain(d))),
	}}}
	unknown := ipt.Chain{Name: DenyChain(d), Rules: DropRules(dl, nil,
		DropCause{Direction: d, Verdict: VerdictDrop, Reason: ReasonUnknown},
		"fail closed: pod not known to netpol yet")}
	return []ipt.Chain{top, unknown}
}

// FixedChains are the chains of family f every node has, whatever its policies. A
// packet whose source is its destination is a pod reaching itself (through
// a Service, hairpinned on its bridge port): "a pod's traffic to itself is
// never blocked", so it leaves netpol before any group or DENY set is looked
// at (see ipt.SameAddress for how the kernel compares the two).
func FixedChains(f ipt.Family, dl DropLog) []ipt.Chain {
	path := func(name string) ipt.Chain {
		return ipt.Chain{Name: name, Rules: []ipt.Rule{
			{Verdict: ipt.Jump(ChainEgress)},
			{Verdict: ipt.Jump(ChainIngress)},
		}}
	}
	chains := []ipt.Chain{
		{Name: ChainForward, Rules: []ipt.Rule{
			{
				Matches: []ipt.Match{ipt.CTState{"RELATED", "ESTABLISHED"}},
				Comment: "reply traffic of allowed connections",
				Verdict: ipt.Jump(ipt.Return),
			},
			{
				Matches: []ipt.Match{ipt.SameAddress{Family: f}},
				Comment: "a pod to itself, through a Service (hairpin)",
				Verdict: ipt.Jump("RETURN"),
			},
			{
				Matches: []ipt.Match{ipt.PhysdevBridged{}},
				Comment: "same-node traffic through the bridge",
				Verdict: ipt.Goto(ChainBridged),
			},
			{Comment: "routed traffic", Verdict: ipt.Goto(ChainRouted)},
		}},
		path(ChainBridged),
		path(ChainRouted),
		{Name: ChainAllow, Rules: []ipt.Rule{
			{Verdict: ipt.SetMark(MarkClear)},
		}},
	}
	if f == ipt.IPv6 {
		// IPv6 does not work without neighbour discovery (NS, NA), router
		// messages (RS, RA) and MLD on the bridge. Conntrack leaves exactly
		// these ICMPv6 types UNTRACKED (never NEW or ESTABLISHED), so they
		// would walk the dispatch, and an isolated pod's group chain would
		// drop the neighbour advertisements its allowed peers need to reach
		// it. They carry nothing to applications: they leave netpol here.
		// Every other packet to or from a link-local address, or to a
		// multicast group, is dropped: every pod's interface has a
		// link-local address (IPv4-only pods too) and any pod may join a
		// group, no set holds either, so they would reach an isolated pod
		// past every group chain.
		ll := func(dir ipt.Dir, d Direction) []ipt.Rule {
			return DropRules(dl, []ipt.Match{ipt.SetMatch{Set: NoPodSet, Dir: dir}},
				DropCause{Direction: d, Verdict: VerdictDrop, Reason: ReasonNoPod},
				"link-local and multicast addresses are in no pod set: fail closed")
		}
		rules := append([]ipt.Rule{{
			Matches: []ipt.Match{ipt.Protocol("ipv6-icmp"), ipt.CTState{"UNTRACKED"}},
			Comment: "IPv6 neighbour discovery, router messages and MLD",
			Verdict: ipt.Jump(ipt.Return),
		}}, ll(ipt.Src, Egress)...)
		rules = append(rules, ll(ipt.Dst, Ingress)...)
		chains[0].Rules = slices.Insert(chains[0].Rules, 1, rules...)
	}
	return chains
}
