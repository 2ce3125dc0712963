package ipt

import (
	"context"
	"fmt"
	"slices"
)

// RenderedHook is a Hook with its rule as RenderRule writes it.
type RenderedHook struct {
	Chain    BuiltinChain `json:"chain"`
	Position int          `json:"position"`
	Rule     string       `json:"rule"`
}

// RenderedChain is a Chain with its rules as RenderRule writes them: the
// form iptables-save lists them in, which a file can keep and Diff compare
// without the values that made them.
type RenderedChain struct {
	Name  string   `json:"name"`
	Rules []string `json:"rules"`
}

// Render returns the hooks and chains of rs in rendered form (sets are not
// rendered).
func Render(rs *Ruleset) ([]RenderedHook, []RenderedChain) {
	hooks := make([]RenderedHook, len(rs.Hooks))
	for i, h := range rs.Hooks {
		hooks[i] = RenderedHook{Chain: h.Chain, Position: h.Position, Rule: RenderRule(string(h.Chain), h.Rule)}
	}
	chains := make([]RenderedChain, len(rs.Chains))
	for i, c := range rs.Chains {
		rules := make([]string, len(c.Rules))
		for j, r := range c.Rules {
			rules[j] = RenderRule(c.Name, r)
		}
		chains[i] = RenderedChain{Name: c.Name, Rules: rules}
	}
	return hooks, chains
}

// DiffRendered is Diff of hooks and chains in rendered form, in the filter
// table of fam: one line for each hook missing or not at its position,
// each chain missing, each rule missing from or unexpected in a chain (or
// rules out of order). It costs one `iptables-save -t filter`.
func (r *Runner) DiffRendered(ctx context.Context, fam Family, hooks []RenderedHook, chains []RenderedChain) ([]string, error) {
	t, err := r.saveFilter(ctx, fam)
	if err != nil {
		return nil, fmt.Errorf("diff %s: %w", fam, err)
	}
	var diffs []string
	for _, h := range hooks {
		have := t.Rules[string(h.Chain)]
		switch at := slices.Index(have, h.Rule); {
		case at < 0:
			diffs = append(diffs, fmt.Sprintf("hook missing from %s: %s", h.Chain, h.Rule))
		case at != hookIndex(Hook{Position: h.Position}, len(have)-1):
			diffs = append(diffs, fmt.Sprintf("hook not at position %d of %s (at %d): %s", h.Position, h.Chain, at+1, h.Rule))
		}
	}
	for _, c := range chains {
		diffs = append(diffs, diffRenderedChain(c.Name, c.Rules, t)...)
	}
	return diffs, nil
}
