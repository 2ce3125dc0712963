package agent

import (
	"fmt"
	"io"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
)

// LiveReader reads back the rules and sets of a family that are in the
// kernel now (ipt.Runner.ReadLive).
type LiveReader func(ipt.Family) (*ipt.Ruleset, error)

// liveRulesets caches what a LiveReader returned, per family, for one
// explain.
type liveRulesets struct {
	read LiveReader
	got  map[ipt.Family]*ipt.Ruleset
}

// explainLive traces pk through the kernel's rules and sets (read back),
// writes the rules it met and the one that decides, and compares the
// verdict with compiled, the trace through the snapshot's compiled rules:
// when they differ it writes both and returns an error saying so.
func (l *liveRulesets) explainLive(w io.Writer, pk policy.Packet, compiled policy.TraceResult, path string) (bool, error) {
	fam, ok := policy.AddressFamily(pk.Src)
	if !ok {
		return false, fmt.Errorf("source %q is not an IP address", pk.Src)
	}
	if l.got == nil {
		l.got = map[ipt.Family]*ipt.Ruleset{}
	}
	rs := l.got[fam]
	if rs == nil {
		var err error
		if rs, err = l.read(fam); err != nil {
			return false, fmt.Errorf("read the kernel's rules: %w", err)
		}
		l.got[fam] = rs
	}
	tr, err := policy.TraceRuleset(rs, pk)
	if err != nil {
		return false, fmt.Errorf("trace through the kernel's rules: %w", err)
	}
	fmt.Fprintf(w, "  live kernel rules and sets on the %s: %s\n", path, word(tr.Allowed))
	for _, r := range tr.Rules {
		fmt.Fprintf(w, "    %s\n", r)
	}
	fmt.Fprintf(w, "    decided by: %s\n", decidingRule(rs, tr))
	if tr.Allowed != compiled.Allowed {
		fmt.Fprintf(w, "  DISAGREE on the %s: the kernel %s, the snapshot's compiled rules %s\n", path, word(tr.Allowed), word(compiled.Allowed))
		return tr.Allowed, fmt.Errorf("the kernel (%s) and the snapshot (%s) disagree on the %s", word(tr.Allowed), word(compiled.Allowed), path)
	}
	return tr.Allowed, nil
}

// decidingRule is the rule that decided tr: for an allowed packet the
// last policy rule that allowed it (its -g NETPOL-ALLOW), else the last rule it
// matched (a DROP, a RETURN, the would-deny rule of audit).
func decidingRule(rs *ipt.Ruleset, tr policy.TraceResult) string {
	chains := map[string][]ipt.Rule{}
	for _, c := range rs.Chains {
		chains[c.Name] = c.Rules
	}
	last, allow := "no rule of netpol matched (FORWARD goes on)", ""
	for _, ref := range tr.Walked {
		if !ref.Matched {
			continue
		}
		r := chains[ref.Chain][ref.Index]
		line := ipt.RenderRule(ref.Chain, r)
		if r.Verdict.Target == policy.ChainAllow {
			allow = line
		}
		last = line
	}
	if tr.Allowed && allow != "" {
		return allow // of the last direction that a policy isolates
	}
	return last
}
