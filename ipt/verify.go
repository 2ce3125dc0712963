package ipt

import (
	"context"
	"fmt"
	"slices"
	"sort"
)

// Holds reads the kernel back and describes, one line each, everything that
// keeps it from holding exactly rulesets (at most one per family): what
// Diff reports for each of them, and every chain of ours (Owned) in the
// filter table of their families, and every set of ours of their families
// (temporaries included), that they do not name. No lines means an Apply of
// rulesets would change nothing; the Runner then remembers rulesets as
// applied, so that its next Apply rewrites only what differs from them.
//
// It costs one `iptables-save -t filter` per family and one `ipset save`,
// whatever the number of rulesets: what a skipped Apply must still pay to
// be sure that the kernel holds the rules, rather than trusting a record
// of what was applied.
func (r *Runner) Holds(ctx context.Context, rulesets []Ruleset) ([]string, error) {
	p, err := newPlan(rulesets)
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	var diffs []string
	for _, fam := range Families {
		rs := p.byFamily[fam]
		if rs == nil {
			continue
		}
		t, err := r.saveFilter(ctx, fam)
		if err != nil {
			return nil, fmt.Errorf("read back %s: %w", fam, err)
		}
		diffs = append(diffs, diffHooks(rs.Hooks, t)...)
		for _, c := range rs.Chains {
			diffs = append(diffs, diffChain(c, t)...)
		}
		want := make(map[string]bool, len(rs.Chains))
		for _, c := range rs.Chains {
			want[c.Name] = true
		}
		for _, name := range t.ownedChains() {
			if !want[name] {
				diffs = append(diffs, fmt.Sprintf("chain %s not wanted", name))
			}
		}
	}
	out, err := r.run(ctx, nil, "ipset", "save")
	if err != nil {
		return nil, fmt.Errorf("read back sets: %w", err)
	}
	saved := parseIPSetSave(string(out))
	for _, s := range p.sets {
		diffs = append(diffs, diffSet(s, s.Family, saved[s.Name])...)
	}
	var extra []string
	for name, s := range saved {
		if Owned(name) && !p.wanted[name] && p.byFamily[s.Family] != nil {
			extra = append(extra, fmt.Sprintf("set %s not wanted", name))
		}
	}
	sort.Strings(extra)
	diffs = append(diffs, extra...)
	if len(diffs) == 0 {
		r.mu.Lock()
		r.memory = memory{valid: true, prints: fingerprint(rulesets)}
		r.mu.Unlock()
	}
	return diffs, nil
}

// diffHooks describes each hook missing from the saved table t, or not at
// its position.
func diffHooks(hooks []Hook, t *savedTable) []string {
	var diffs []string
	for _, h := range hooks {
		line := RenderRule(string(h.Chain), h.Rule)
		have := t.Rules[string(h.Chain)]
		switch at := slices.Index(have, line); {
		case at < 0:
			diffs = append(diffs, fmt.Sprintf("hook missing from %s: %s", h.Chain, line))
		case at != hookIndex(h, len(have)-1):
			diffs = append(diffs, fmt.Sprintf("hook not at position %d of %s (at %d): %s", h.Position, h.Chain, at+1, line))
		}
	}
	return diffs
}
