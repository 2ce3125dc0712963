package ipt

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// plan is the validated input of one Apply.
type plan struct {
	byFamily map[Family]*Ruleset
	sets     []Set           // every desired set of both families, Family set
	wanted   map[string]bool // names of sets, and of their temps
}

// Apply makes the kernel hold rulesets (at most one per family), in this order:
//
//  1. one `ipset -exist restore` creates or refills every desired set of both
//     families (RenderSets), so the rules below can reference them;
//  2. per family with a ruleset or stale chains, one
//     `iptables-restore -w --noflush` transaction declares and fills every
//     chain of the ruleset, inserts each missing Hook (`-I CHAIN POS`, after
//     its target chain is declared), deletes the hooks that jump to a stale
//     chain, and deletes the stale chains (-X). Hooks already present are left
//     where they are; POS is clamped to the end of a shorter chain;
//  3. one `ipset restore` destroys the sets of ours that neither family wants,
//     now that no rule references them.
//
// staleChains are our chains that exist but are no longer desired (typically
// ListChains minus the ruleset's chains); every name must be ours. A family
// absent from rulesets and staleChains is not touched at all, but its sets
// count as not wanted. The first failure stops the sync; a failed transaction
// leaves that family's rules as they were, and returns a *RestoreError.
func (r *Runner) Apply(ctx context.Context, rulesets []Ruleset, staleChains map[Family][]string) error {
	p, err := newPlan(rulesets, staleChains)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	existing, err := r.listSets(ctx)
	if err != nil {
		return fmt.Errorf("apply: list sets: %w", err)
	}
	text, err := RenderSets(p.sets, existing)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if err := r.ipsetRestore(ctx, text); err != nil {
		return fmt.Errorf("apply sets: %w", err)
	}
	for _, fam := range Families {
		rs, stale := p.byFamily[fam], staleChains[fam]
		if rs == nil && len(stale) == 0 {
			continue
		}
		if rs == nil {
			rs = &Ruleset{Family: fam}
		}
		if err := r.applyRules(ctx, rs, stale); err != nil {
			return fmt.Errorf("apply %s rules: %w", fam, err)
		}
	}
	var gone []string
	for name := range existing {
		if Owned(name) && !p.wanted[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	if err := r.ipsetRestore(ctx, renderDestroySets(gone)); err != nil {
		return fmt.Errorf("apply: destroy stale sets: %w", err)
	}
	return nil
}

// newPlan validates the input of Apply.
func newPlan(rulesets []Ruleset, staleChains map[Family][]string) (*plan, error) {
	p := &plan{byFamily: make(map[Family]*Ruleset), wanted: make(map[string]bool)}
	for i := range rulesets {
		rs := &rulesets[i]
		if err := Validate(rs); err != nil {
			return nil, fmt.Errorf("%s ruleset: %w", rs.Family, err)
		}
		if p.byFamily[rs.Family] != nil {
			return nil, fmt.Errorf("%w: two %s rulesets", ErrInvalid, rs.Family)
		}
		p.byFamily[rs.Family] = rs
		for _, s := range rs.Sets {
			if p.wanted[s.Name] {
				return nil, fmt.Errorf("%w: set %s is in both families", ErrInvalid, s.Name)
			}
			s.Family = rs.Family
			p.sets = append(p.sets, s)
			p.wanted[s.Name] = true
			p.wanted[TempSetName(s.Name)] = true
		}
	}
	for fam, names := range staleChains {
		for _, n := range names {
			if err := checkOwnedName(n, MaxChainName); err != nil {
				return nil, fmt.Errorf("%s stale chain: %w", fam, err)
			}
		}
	}
	return p, nil
}

// applyRules runs the iptables-restore transaction of one family.
func (r *Runner) applyRules(ctx context.Context, rs *Ruleset, stale []string) error {
	desired := make(map[string]bool, len(rs.Chains))
	for _, c := range rs.Chains {
		desired[c.Name] = true
	}
	drop := make(map[string]bool)
	for _, n := range staleToDrop(stale, desired) {
		drop[n] = true
	}
	var read []string
	for _, h := range rs.Hooks {
		read = append(read, h.Chain)
	}
	if len(drop) > 0 {
		read = append(read, builtinChains...)
	}
	slices.Sort(read)
	current := make(map[string][]string)
	for _, c := range slices.Compact(read) {
		out, err := r.iptables(ctx, rs.Family, "-S", c)
		if err != nil {
			return err
		}
		current[c] = parseSave(string(out)).Rules[c]
	}
	return r.restore(ctx, rs.Family, renderTransaction(rs, stale, planHooks(rs.Hooks, current, drop)))
}

// planHooks returns the restore lines that delete the rules of current
// (built-in chain -> its rules) jumping to a dropped chain, then insert every
// hook missing from its chain, at its Position clamped to the chain's end.
func planHooks(hooks []Hook, current map[string][]string, drop map[string]bool) []string {
	var ops []string
	live := make(map[string][]string, len(current))
	for _, c := range slices.Sorted(maps.Keys(current)) {
		for _, line := range current[c] {
			if drop[ruleTarget(line)] {
				ops = append(ops, asDelete(line))
				continue
			}
			live[c] = append(live[c], line)
		}
	}
	sorted := slices.Clone(hooks)
	slices.SortStableFunc(sorted, func(a, b Hook) int {
		if c := strings.Compare(a.Chain, b.Chain); c != 0 {
			return c
		}
		return a.Position - b.Position
	})
	for _, h := range sorted {
		line := RenderRule(h.Chain, h.Rule)
		if slices.Contains(live[h.Chain], line) {
			continue
		}
		pos := min(max(h.Position, 1), len(live[h.Chain])+1)
		live[h.Chain] = slices.Insert(live[h.Chain], pos-1, line)
		ops = append(ops, "-I "+h.Chain+" "+strconv.Itoa(pos)+strings.TrimPrefix(line, "-A "+h.Chain))
	}
	return ops
}
