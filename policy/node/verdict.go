package node

import "strings"

// Action is what a Verdict does with traffic or with a pod's addresses.
type Action uint8

const (
	// Next decides nothing here: the policies that select the pod decide,
	// through the sets its addresses are put in.
	Next Action = iota
	// Allow lets the traffic through, or leaves the pod unrestricted.
	Allow
	// Deny drops the traffic, or puts the pod's addresses in the DENY set.
	Deny
)

// String is "next", "allow" or "deny".
func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return "next"
}

// Reason is what decided a Verdict. Each reason has exactly one Action.
type Reason uint8

const (
	// OwnAddress: the pod talks to its own address (inside its network
	// namespace, or hairpinned through a Service). Allow.
	OwnAddress Reason = iota + 1
	// NoIndex: the agent has not synced on this node, so nothing is known
	// and every pod fails closed. Deny.
	NoIndex
	// KnownPod: the snapshot knows the pod; its policies decide. Next.
	KnownPod
	// UnknownIsolated: the snapshot does not know the pod and its namespace
	// has policies, so it fails closed until the agent knows it. Deny.
	UnknownIsolated
	// UnknownOpen: the snapshot does not know the pod and its namespace has
	// no policy. Allow.
	UnknownOpen
	// NotAPod: the address is no pod's, so no policy applies. Allow.
	NotAPod
	// NotSelected: no policy selects the pod in the verdict's direction.
	// Allow.
	NotSelected
	// AllowedByRule: a rule of a policy that selects the pod allows the
	// traffic (the verdict's Keys name every such rule). Allow.
	AllowedByRule
	// NoRuleAllows: policies select the pod in the verdict's direction
	// (the verdict's Keys) and none of their rules allows the traffic. Deny.
	NoRuleAllows
	// LinkLocalOrMulticast: an end of the connection is an IPv6
	// link-local or multicast address, which is no pod's and is dropped
	// before any policy (see FixedChains). Deny.
	LinkLocalOrMulticast
	// WouldDeny: as NoRuleAllows, but the pod's namespace (or the node) is
	// in audit (Snapshot.Audited), so the traffic passes and is logged as
	// would-deny. Allow.
	WouldDeny
)

// actions is the Action of each Reason.
var actions = map[Reason]Action{
	OwnAddress:           Allow,
	NoIndex:              Deny,
	KnownPod:             Next,
	UnknownIsolated:      Deny,
	UnknownOpen:          Allow,
	NotAPod:              Allow,
	NotSelected:          Allow,
	AllowedByRule:        Allow,
	NoRuleAllows:         Deny,
	LinkLocalOrMulticast: Deny,
	WouldDeny:            Allow,
}

// Verdict is a decision with what decided it: the answer of Evaluate for one
// direction of a connection, or of Index.Admit for a pod's addresses. It is
// not an iptables target (that is ipt's); String gives the one sentence the
// plugin logs and explain prints.
type Verdict struct {
	Reason Reason
	// Direction is the direction judged; it matters to NotSelected only.
	Direction Direction
	// Keys are the rules that allow the traffic ("namespace/name
	// ingress[0]") for AllowedByRule, or the policies that select the pod
	// ("namespace/name") for NoRuleAllows and WouldDeny; empty otherwise.
	Keys []string
}

// Action is what the verdict does; an unset verdict (no Reason) denies.
func (v Verdict) Action() Action {
	if a, ok := actions[v.Reason]; ok {
		return a
	}
	return Deny
}

// Allowed reports whether the verdict lets the traffic through.
func (v Verdict) Allowed() bool { return v.Action() == Allow }

// String says why, in one sentence.
func (v Verdict) String() string {
	switch v.Reason {
	case OwnAddress:
		return "a pod's traffic to itself is never blocked"
	case NoIndex:
		return "no snapshot yet: denied until the agent syncs"
	case KnownPod:
		return "pod known to the snapshot"
	case UnknownIsolated:
		return "pod not in the snapshot and its namespace has policies: denied until the agent knows it"
	case UnknownOpen:
		return "pod not in the snapshot; its namespace has no policy"
	case NotAPod:
		return "not a pod: no policy applies"
	case NotSelected:
		return "no policy selects the pod for " + v.Direction.String() + ": allowed"
	case AllowedByRule:
		return "allowed by " + strings.Join(v.Keys, ", ")
	case NoRuleAllows:
		return "no rule of " + strings.Join(v.Keys, ", ") + " allows it"
	case LinkLocalOrMulticast:
		return "an IPv6 link-local or multicast address is no pod's: denied"
	case WouldDeny:
		return "would-deny (audit): no rule of " + strings.Join(v.Keys, ", ") + " allows it; passed"
	}
	return "no verdict: denied"
}

// Admission is the verdict on a pod's addresses before any policy is
// looked at: indexed says whether the agent has synced, known whether the
// snapshot knows the pod, isolated whether the pod's namespace has a policy.
// Index.Admit (the plugin on ADD) and policy.Evaluate both decide by it.
func Admission(indexed, known, isolated bool) Verdict {
	switch {
	case !indexed:
		return Verdict{Reason: NoIndex}
	case known:
		return Verdict{Reason: KnownPod}
	case isolated:
		return Verdict{Reason: UnknownIsolated}
	}
	return Verdict{Reason: UnknownOpen}
}
