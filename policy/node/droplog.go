package node

import (
	"fmt"
	"strings"

	"github.com/netpol/netpol/ipt"
)

// DropLog says how the packets netpol drops are logged: every rule that
// drops is preceded by a rule with the same matches that copies the packet
// to NFLOG group Group, at most Rate packets a second on average and Burst
// at once per drop rule (the kernel's token bucket, `-m limit`). Allowed
// packets never reach such a rule. Rate 0 logs nothing.
type DropLog struct {
	Group uint16 `json:"group"`
	Rate  int    `json:"rate"`
	Burst int    `json:"burst"`
}

// DefaultDropLog is the drop logging of a snapshot that says none, and of
// the plugin's skeleton when its netconf says none: NFLOG group 2500, 10
// drops a second and 50 at once per drop rule.
func DefaultDropLog() DropLog { return DropLog{Group: 2500, Rate: 10, Burst: 50} }

// Validate reports a DropLog the kernel would refuse, naming the field.
func (l DropLog) Validate() error {
	switch {
	case l.Rate == 0:
		return nil
	case l.Rate < 0 || l.Rate > ipt.MaxLimit:
		return fmt.Errorf("dropLog.rate %d: want 0 (off) to %d per second", l.Rate, ipt.MaxLimit)
	case l.Burst < 1 || l.Burst > ipt.MaxLimit:
		return fmt.Errorf("dropLog.burst %d: want 1 to %d", l.Burst, ipt.MaxLimit)
	}
	return nil
}

// The reasons a packet is dropped, as the NFLOG prefix carries them.
const (
	// ReasonNoPolicy: the pod is isolated and none of the policies that
	// select it allows the packet (a group chain's final DROP).
	ReasonNoPolicy = "nopolicy"
	// ReasonUnknown: the pod is in the DENY set, its policies not known to
	// netpol yet (fail closed).
	ReasonUnknown = "unknown"
	// ReasonNoPod: an end of the packet is an IPv6 link-local or multicast
	// address, which no pod set holds (see FixedChains).
	ReasonNoPod = "nopod"
	// ReasonNoGroup: the pod is isolated in the packet's direction (in the
	// isolated set) but in none of that direction's group sets, as when an
	// ADD was cut short between the two (fail closed; see policy's
	// dispatcher).
	ReasonNoGroup = "nogroup"
)

// VerdictDrop is the verdict of a dropped packet.
const VerdictDrop = "drop"

// reasonText is what a drop record says for each reason.
var reasonText = map[string]string{
	ReasonNoPolicy: "no policy allows it",
	ReasonUnknown:  "pod not known yet",
	ReasonNoPod:    "an IPv6 link-local or multicast address is no pod's",
	ReasonNoGroup:  "isolated, but in no group set",
}

// DropCause is what the NFLOG prefix of a drop rule says: made only of
// netpol's own tokens, never of user strings, so it is at most 48 bytes
// and needs no escaping:
//
//	netpol-<I|E>-<verdict>-<reason>[-<group hash>]
//
// The group hash is the one in the group chain's name (NETPOL-GI-<hash>);
// Compiled.Groups maps it back to the policies that select the pod.
type DropCause struct {
	Direction Direction
	Verdict   string // VerdictDrop, or VerdictWouldDeny (audit)
	Reason    string // ReasonNoPolicy or ReasonUnknown
	Group     string // the group's hash; empty for ReasonUnknown
}

// dropPrefixStart starts every NFLOG prefix of netpol.
const dropPrefixStart = "netpol-"

// Prefix is the NFLOG prefix of c.
func (c DropCause) Prefix() string {
	p := dropPrefixStart + c.Direction.Letter() + "-" + verdictToken(c.Verdict) + "-" + c.Reason
	if c.Group != "" {
		p += "-" + c.Group
	}
	return p
}

// ReasonText is the reason in words ("no policy allows it").
func (c DropCause) ReasonText() string { return reasonText[c.Reason] }

// ParseDropPrefix reads a prefix that Prefix made; any other is an error
// naming it (another tool's NFLOG rules may log to the same group).
func ParseDropPrefix(s string) (DropCause, error) {
	parts := strings.Split(strings.TrimPrefix(s, dropPrefixStart), "-")
	bad := fmt.Errorf("NFLOG prefix %q is not netpol's", s)
	if !strings.HasPrefix(s, dropPrefixStart) || len(parts) < 3 || len(parts) > 4 {
		return DropCause{}, bad
	}
	var c DropCause
	switch parts[0] {
	case "I":
		c.Direction = Ingress
	case "E":
		c.Direction = Egress
	default:
		return DropCause{}, bad
	}
	c.Verdict, c.Reason = tokenVerdict(parts[1]), parts[2]
	if c.Verdict == "" || reasonText[c.Reason] == "" {
		return DropCause{}, bad
	}
	if len(parts) == 4 {
		c.Group = parts[3]
		if len(c.Group) != 16 || strings.Trim(c.Group, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
			return DropCause{}, bad
		}
	}
	if (c.Reason == ReasonNoPolicy) != (c.Group != "") {
		return DropCause{}, bad
	}
	return c, nil
}

// DropRules ends a drop path: the NFLOG rule (when dl logs drops) and
// the DROP, both with matches (the limit goes last, so that only packets
// that will be dropped spend the rule's tokens). Every DROP netpol emits
// comes from here.
func DropRules(dl DropLog, matches []ipt.Match, cause DropCause, comment string) []ipt.Rule {
	var out []ipt.Rule
	if dl.Rate > 0 {
		ms := append(append([]ipt.Match{}, matches...), ipt.Limit{PerSecond: dl.Rate, Burst: dl.Burst})
		out = append(out, ipt.Rule{Matches: ms, Verdict: ipt.NFLOG(dl.Group, cause.Prefix())})
	}
	return append(out, ipt.Rule{Matches: matches, Comment: comment, Verdict: ipt.Jump(ipt.Drop)})
}

// VerdictWouldDeny is the verdict of a packet that a policy in audit would
// have dropped and that passed; its NFLOG prefix carries the token "audit".
const VerdictWouldDeny = "would-deny"

// verdictTokens are the NFLOG prefix tokens of the verdicts (the prefix
// is split at "-", so a token has none).
var verdictTokens = map[string]string{VerdictDrop: "drop", VerdictWouldDeny: "audit"}

// verdictToken is the prefix token of verdict v.
func verdictToken(v string) string { return verdictTokens[v] }

// tokenVerdict is the verdict of a prefix token, "" when it is none.
func tokenVerdict(tok string) string {
	for v, t := range verdictTokens {
		if t == tok {
			return v
		}
	}
	return ""
}
