package policy

import "github.com/netpol/netpol/ipt"

// CompilePod is the part of Compile(s, atts) that the local pod podKey
// relies on, without sets: per family, the FORWARD hook, the fixed chains,
// the dispatch chains NETPOL-INGRESS and NETPOL-EGRESS whole, the chains of
// the pod's groups and the chains of the policies that select it. Every chain
// it returns is exactly the one Compile returns for the node. CNI CHECK
// compares the same chains with the kernel without compiling (Expect, then
// node.Expected.For, held to CompilePod by a test); the pod's set entries
// come from the Index. It
// costs the policy selection of the node and the rules of the pod's own
// policies; no set is filled.
func CompilePod(s *Snapshot, podKey string) ([]ipt.Ruleset, error) {
	c, err := newCompiler(s, nil)
	if err != nil {
		return nil, err
	}
	mine := map[*compiledPolicy]bool{}
	others := map[string]bool{} // the chains of groups podKey is not in
	for _, g := range c.groups {
		if !hasPod(g, podKey) {
			others[groupChain(g.dir, g.key)] = true
			continue
		}
		for _, cp := range g.policies {
			mine[cp] = true
		}
	}
	var policies []*compiledPolicy
	for _, cp := range c.policies {
		if mine[cp] {
			policies = append(policies, cp)
		}
	}
	c.policies = policies
	c.rulesOnly = true
	var out []ipt.Ruleset
	for _, f := range ipt.Families {
		rs, err := c.family(f)
		if err != nil {
			return nil, err
		}
		rs.Sets = nil
		chains := rs.Chains[:0]
		for _, ch := range rs.Chains {
			if !others[ch.Name] {
				chains = append(chains, ch)
			}
		}
		rs.Chains = chains
		out = append(out, *rs)
	}
	return out, nil
}

func hasPod(g *group, podKey string) bool {
	for _, p := range g.pods {
		if p.Key() == podKey {
			return true
		}
	}
	return false
}
