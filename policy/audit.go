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

// verdictRule is the last rule of a group chain, reached when no policy of
// the group allowed the packet: DROP, or in audit RETURN (the packet goes
// on to the other direction's check, or back to FORWARD), with a comment
// saying which. The verdict of a group is decided here and only here.
func verdictRule(d Direction, audit bool) ipt.Rule {
	if audit {
		return ipt.Rule{Comment: d.String() + " would be denied (audit): no policy allows it", Verdict: ipt.Jump(ipt.Return)}
	}
	return ipt.Rule{Comment: d.String() + " denied: no policy allows it", Verdict: ipt.Jump(ipt.Drop)}
}
