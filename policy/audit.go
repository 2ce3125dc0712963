package policy

import "github.com/netpol/netpol/ipt"

// AuditAnnotation on a Namespace, with the value "true", puts its pods'
// policies in audit: evaluated exactly as enforcement would, but a packet
// they would drop passes (and is logged as would-deny). netpol's own
// annotations and labels all live under the prefix "netpol.io/".
const AuditAnnotation = "netpol.io/audit"

// Audited reports whether the policies of namespace ns are in audit: the
// namespace carries AuditAnnotation, or the whole node is (Snapshot.Audit).
// The fail-closed DENY set is never in audit: a pod whose policies are not
// known yet cannot be evaluated, so it stays denied.
func (s *Snapshot) Audited(ns string) bool {
	if s.Audit {
		return true
	}
	for i := range s.Namespaces {
		if s.Namespaces[i].Name == ns {
			return s.Namespaces[i].Audit
		}
	}
	return false
}

// AuditOn reports whether an annotation value turns audit on ("true"; any
// other value leaves the namespace enforced).
func AuditOn(annotations map[string]string) bool { return annotations[AuditAnnotation] == "true" }

// groupVerdict ends a group chain, reached when no policy of the group
// allowed the packet: the drop rules (logged, then DROP), or in audit the
// same log rule with the would-deny verdict and, instead of DROP, a rule
// that clears PendingMark and ends the chain, so that the packet returns to
// the other direction's check, or back to FORWARD. Policies are namespaced,
// so a group's pods share one namespace: audit is decided per group, here
// and only here.
func (c *compiler) groupVerdict(g *group) []ipt.Rule {
	cause := DropCause{Direction: g.dir, Verdict: VerdictDrop, Reason: ReasonNoPolicy, Group: hash(g.key)}
	if !c.snap.Audited(g.policies[0].np.Namespace) {
		return c.dropRules(nil, cause, g.dir.String()+" denied: no policy allows it")
	}
	cause.Verdict = VerdictWouldDeny
	rules := c.dropRules(nil, cause, g.dir.String()+" would be denied (audit): no policy allows it")
	rules[len(rules)-1].Verdict = ipt.SetMark(markClear)
	return rules
}
