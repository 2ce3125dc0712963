package policy

import (
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

// dropLog returns the snapshot's drop logging, or the default.
func (s *Snapshot) dropLog() DropLog {
	if s.DropLog != nil {
		return *s.DropLog
	}
	return DefaultDropLog()
}

// dropRules is node.DropRules with the drop logging being compiled.
func (c *compiler) dropRules(matches []ipt.Match, cause DropCause, comment string) []ipt.Rule {
	return node.DropRules(c.dropLog, matches, cause, comment)
}

// GroupPolicies maps the hash of every group chain (as a drop's NFLOG
// prefix carries it) to the keys (namespace/name) of the policies that
// select the group's pods, in the group's direction.
type GroupPolicies map[string][]string

func (c *compiler) groupPolicies() GroupPolicies {
	out := GroupPolicies{}
	for _, g := range c.groups {
		keys := make([]string, len(g.policies))
		for i, cp := range g.policies {
			keys[i] = cp.key
		}
		out[hash(g.key)] = keys
	}
	return out
}
