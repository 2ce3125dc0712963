package ipt

import (
	"context"
	"fmt"
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
	chains := make([]RenderedChain, len(rs.Chains))
	for i, c := range rs.Chains {
		rules := make([]string, len(c.Rules))
		for j, r := range c.Rules {
			rules[j] = RenderRule(c.Name, r)
		}
		chains[i] = RenderedChain{Name: c.Name, Rules: rules}
	}
	return renderHooks(rs.Hooks), chains
}

func renderHooks(hooks []Hook) []RenderedHook {
	out := make([]RenderedHook, len(hooks))
	for i, h := range hooks {
		out[i] = RenderedHook{Chain: h.Chain, Position: h.Position, Rule: RenderRule(string(h.Chain), h.Rule)}
	}
	return out
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
	diffs := diffHooks(hooks, t)
	for _, c := range chains {
		diffs = append(diffs, diffRenderedChain(c.Name, c.Rules, t)...)
	}
	return diffs, nil
}
