package policy

import (
	"slices"
	"strings"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

// Expect is what CNI CHECK compares with the kernel once c is committed
// (node.Expected): c's hooks and chains, rendered, without sets. A group
// chain names its group set; a policy chain names the group sets of the
// groups that jump to it; the other chains name none (every pod relies on
// them). For any local pod, Expect(c).For(f, c.Index.Pods[pod]) is the
// family f part of CompilePod, rendered.
func Expect(c *Compiled) *node.Expected {
	e := &node.Expected{Version: node.ExpectedVersion}
	for i := range c.Rulesets {
		rs := &c.Rulesets[i]
		hooks, rendered := ipt.Render(rs)
		groups := map[string][]string{} // chain -> the group sets relying on it
		for _, ch := range rs.Chains {
			if !isGroupChain(ch.Name) {
				continue
			}
			set := familyPrefix(rs.Family) + strings.TrimPrefix(ch.Name, ipt.Prefix) // groupSet of groupChain
			groups[ch.Name] = append(groups[ch.Name], set)
			for _, r := range ch.Rules {
				if t := string(r.Verdict.Target); isPolicyChain(t) {
					groups[t] = append(groups[t], set)
				}
			}
		}
		ef := node.ExpectedFamily{Family: rs.Family, Hooks: hooks}
		for _, ch := range rendered {
			g := groups[ch.Name]
			slices.Sort(g)
			ef.Chains = append(ef.Chains, node.ExpectedChain{RenderedChain: ch, Groups: slices.Compact(g)})
		}
		e.Families = append(e.Families, ef)
	}
	return e
}

// isGroupChain reports whether name is a groupChain.
func isGroupChain(name string) bool {
	return strings.HasPrefix(name, ipt.Prefix+"-G"+Ingress.Letter()+"-") ||
		strings.HasPrefix(name, ipt.Prefix+"-G"+Egress.Letter()+"-")
}

// isPolicyChain reports whether name is a policyChain.
func isPolicyChain(name string) bool {
	return strings.HasPrefix(name, ipt.Prefix+"-"+Ingress.Letter()+"-") ||
		strings.HasPrefix(name, ipt.Prefix+"-"+Egress.Letter()+"-")
}
