package node

import "github.com/netpol/netpol/ipt"

// ExpectedVersion is written into every Expected; readers reject others.
const ExpectedVersion = 1

// Expected is what CNI CHECK compares with the kernel, made by the agent
// from the same compile as the rules it commits (policy.Expect), so that
// CHECK compiles nothing: per family, the hooks and every chain of the node
// in the form iptables-save lists them, without set members (CHECK reads
// a pod's own set entries from the Index). A chain that only some pods
// rely on (a group's chain, a policy's chain) names the group sets whose
// pods rely on it; every other chain (the fixed chains, the dispatch and
// its tree) every pod relies on.
//
// Index is the SHA-256 (hex) of the stored index of the same commit: the
// agent writes the Expected after each commit, a little later, so CHECK
// refuses an Expected made for another index than the one it reads.
type Expected struct {
	Version  int
	Index    string
	Families []ExpectedFamily
}

// ExpectedFamily is the part of Expected of one address family.
type ExpectedFamily struct {
	Family ipt.Family         `json:"family"`
	Hooks  []ipt.RenderedHook `json:"hooks"`
	Chains []ExpectedChain    `json:"chains"`
}

// ExpectedChain is one chain, rendered, and the group sets (of the same
// family) whose pods rely on it; none when every pod does.
type ExpectedChain struct {
	ipt.RenderedChain
	Groups []string `json:"groups,omitempty"`
}

// For returns, for the family f, the hooks and the chains that a pod with
// memberships ms (its Index entry) relies on: the chains every pod relies
// on and those of the groups whose set is among its memberships. It is
// exactly what policy.CompilePod returns for the pod, rendered. ok is false
// when e has no such family.
func (e *Expected) For(f ipt.Family, ms []Membership) (hooks []ipt.RenderedHook, chains []ipt.RenderedChain, ok bool) {
	mine := map[string]bool{}
	for _, m := range ms {
		if m.Family == f {
			mine[m.Set] = true
		}
	}
	for _, ef := range e.Families {
		if ef.Family != f {
			continue
		}
		for _, c := range ef.Chains {
			if reliedOn(c.Groups, mine) {
				chains = append(chains, c.RenderedChain)
			}
		}
		return ef.Hooks, chains, true
	}
	return nil, nil, false
}

// ExpectedOf is the Expected of rulesets that every pod relies on whole
// (Skeleton's), for no index.
func ExpectedOf(rulesets []ipt.Ruleset) *Expected {
	e := &Expected{Version: ExpectedVersion}
	for i := range rulesets {
		hooks, chains := ipt.Render(&rulesets[i])
		ef := ExpectedFamily{Family: rulesets[i].Family, Hooks: hooks}
		for _, c := range chains {
			ef.Chains = append(ef.Chains, ExpectedChain{RenderedChain: c})
		}
		e.Families = append(e.Families, ef)
	}
	return e
}

func reliedOn(groups []string, mine map[string]bool) bool {
	if len(groups) == 0 {
		return true
	}
	for _, g := range groups {
		if mine[g] {
			return true
		}
	}
	return false
}
