package policy

import (
	"sort"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

// family compiles the ruleset of one address family.
func (c *compiler) family(f ipt.Family) (*ipt.Ruleset, error) {
	c.sets = map[string]*ipt.Set{}
	c.seen = map[string]map[string]bool{}
	chains := node.FixedChains(f, c.dropLog)
	for _, fs := range node.FixedSets(f) {
		s := c.set(f, fs.Name, fs.Type, fs.Comment)
		for _, m := range fs.Members {
			c.addMember(s, m.Entry, m.NoMatch)
		}
	}
	deny := c.sets[DenySet(f)]
	for _, a := range c.unknown {
		for _, ip := range a.IPs {
			if fam, ok := ipFamily(ip); ok && fam == f {
				c.addMember(deny, ip, false)
			}
		}
	}
	var byDir [2][]*group
	for _, g := range c.groups {
		byDir[g.dir] = append(byDir[g.dir], g)
		chains = append(chains, c.groupRules(groupChain(g.dir, g.key), g))
	}
	chains = append(chains, c.dispatch(f, Ingress, byDir[Ingress])...)
	chains = append(chains, c.dispatch(f, Egress, byDir[Egress])...)
	for _, cp := range c.policies {
		for d := Ingress; d <= Egress; d++ {
			if !cp.dirs[d] {
				continue
			}
			pc, err := c.policyRules(f, d, cp)
			if err != nil {
				return nil, err
			}
			chains = append(chains, pc)
		}
	}
	sort.Slice(chains, func(i, j int) bool { return chains[i].Name < chains[j].Name })
	return &ipt.Ruleset{
		Family: f,
		Hooks:  node.Hooks(),
		Chains: chains,
		Sets:   c.sortedSets(),
	}, nil
}

// peerDir is the side of the packet that a policy's peers are matched on.
func peerDir(d Direction) ipt.Dir {
	if d == Egress {
		return ipt.Dst
	}
	return ipt.Src
}

// groupRules is the chain of a group: the union of its policies. It sets
// PendingMark on entry; a policy chain's rule that allows the
// packet clears it. A policy after the first runs only while the packet is
// still pending: once one policy allowed it, the union allows it, and the
// packet skips the rest at the cost of one plain mark match each instead of
// their rules and set lookups. An allowed packet then returns (the chain
// was reached by goto, so it returns to the path chain, which goes on to
// the other direction); when none allowed it, groupVerdict ends the chain
// (a drop, or in audit a would-deny that clears the bit and returns).
func (c *compiler) groupRules(name string, g *group) ipt.Chain {
	ch := ipt.Chain{Name: name}
	ch.Rules = append(ch.Rules, ipt.Rule{Comment: "pending: no policy allowed it yet", Verdict: ipt.SetMark(PendingMark)})
	for i, cp := range g.policies {
		r := ipt.Rule{Comment: cp.key, Verdict: ipt.Jump(ipt.Target(policyChain(g.dir, cp.key)))}
		if i > 0 {
			r.Matches = []ipt.Match{pending}
		}
		ch.Rules = append(ch.Rules, r)
	}
	ch.Rules = append(ch.Rules, ipt.Rule{
		Matches: []ipt.Match{allowed},
		Comment: "allowed by a policy",
		Verdict: ipt.Jump(ipt.Return),
	})
	ch.Rules = append(ch.Rules, c.groupVerdict(g)...)
	return ch
}

// set returns the set called name in the family being compiled, creating it.
func (c *compiler) set(f ipt.Family, name string, t ipt.SetType, comment string) *ipt.Set {
	if s := c.sets[name]; s != nil {
		return s
	}
	s := &ipt.Set{Name: name, Type: t, Family: f, Comment: comment}
	c.sets[name] = s
	return s
}

// addPod puts the pod's addresses of family f into s (as address+suffix),
// and records the membership for the plugin when the pod is local: a local
// pod with no address yet gets it at ADD time.
func (c *compiler) addPod(s *ipt.Set, f ipt.Family, p *Pod, suffix string) {
	for _, ip := range p.IPs {
		if c.families[ip] == f {
			c.addMember(s, ip+suffix, false)
		}
	}
	if !c.snap.IsLocal(p) {
		return
	}
	m := c.member[p.Key()]
	if m == nil {
		m = map[Membership]bool{}
		c.member[p.Key()] = m
	}
	m[Membership{Family: f, Set: s.Name, Suffix: suffix}] = true
}

// addMember adds entry to s once. Sets are rebuilt per family, so the
// duplicate check is a map kept beside them.
func (c *compiler) addMember(s *ipt.Set, entry string, noMatch bool) {
	seen := c.seen[s.Name]
	if seen == nil {
		seen = map[string]bool{}
		c.seen[s.Name] = seen
	}
	if seen[entry] {
		return
	}
	seen[entry] = true
	s.Members = append(s.Members, ipt.Member{Entry: entry, NoMatch: noMatch})
}

func (c *compiler) sortedSets() []ipt.Set {
	out := make([]ipt.Set, 0, len(c.sets))
	for _, s := range c.sets {
		sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].Entry < s.Members[j].Entry })
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
