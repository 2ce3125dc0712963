package ipt

import (
	"context"
	"fmt"
	"slices"
	"sort"
)

// maxDiffsPerItem bounds the lines Diff reports for one chain or set.
const maxDiffsPerItem = 20

// ListChains returns our chains (Prefix) now in the filter table of fam,
// sorted. Equivalent to: `iptables-save -t filter | grep '^:NETPOL'`.
func (r *Runner) ListChains(ctx context.Context, fam Family) ([]string, error) {
	t, err := r.saveFilter(ctx, fam)
	if err != nil {
		return nil, fmt.Errorf("list %s chains: %w", fam, err)
	}
	return t.ownedChains(), nil
}

// Usable reports why the filter table of fam cannot be used, or nil: the
// binary is missing, or the kernel has no such table.
// Equivalent to: `ip6tables -w -S FORWARD` (iptables for IPv4).
func (r *Runner) Usable(ctx context.Context, fam Family) error {
	if _, err := r.iptables(ctx, fam, "-S", string(Forward)); err != nil {
		return fmt.Errorf("%s tables: %w", fam, err)
	}
	return nil
}

// Diff reads back the kernel and describes, one line each, every piece of rs
// that is missing or different: a missing hook, a missing chain, a rule
// missing from or unexpected in a chain (or rules out of order), a missing
// set, a set of another type or family, a member missing from or unexpected
// in a set. No lines means the kernel holds rs. Chains and sets that rs does
// not name are not reported. It costs one `iptables-save -t filter` and,
// when rs has sets, one dump of the sets: over netlink in the process's own
// network namespace, else (or when netlink fails) one `ipset save`.
func (r *Runner) Diff(ctx context.Context, rs *Ruleset) ([]string, error) {
	if err := Validate(rs); err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	t, err := r.saveFilter(ctx, rs.Family)
	if err != nil {
		return nil, fmt.Errorf("diff %s: %w", rs.Family, err)
	}
	diffs := diffHooks(renderHooks(rs.Hooks), t)
	for _, c := range rs.Chains {
		diffs = append(diffs, diffChain(c, t)...)
	}
	if len(rs.Sets) == 0 {
		return diffs, nil
	}
	saved, err := r.readAllSets(ctx) // over netlink where it can: no process, no text to parse
	if err != nil {
		return nil, fmt.Errorf("diff sets: %w", err)
	}
	for _, s := range rs.Sets {
		diffs = append(diffs, diffSet(s, rs.Family, saved[s.Name])...)
	}
	return diffs, nil
}

// diffChain compares the desired chain c with the saved table t.
func diffChain(c Chain, t *savedTable) []string {
	if !t.Declared[c.Name] {
		return []string{fmt.Sprintf("chain %s missing", c.Name)}
	}
	want := make([]string, len(c.Rules))
	for i, r := range c.Rules {
		want[i] = RenderRule(c.Name, r)
	}
	return diffRenderedChain(c.Name, want, t)
}

// diffRenderedChain compares the rules want of the chain called name
// (rendered) with the saved table t, in which the chain is declared.
func diffRenderedChain(name string, want []string, t *savedTable) []string {
	if !t.Declared[name] {
		return []string{fmt.Sprintf("chain %s missing", name)}
	}
	have := t.Rules[name]
	missing, extra := multisetDiff(want, have)
	diffs := describe("chain "+name+": missing rule: ", missing)
	diffs = append(diffs, describe("chain "+name+": unexpected rule: ", extra)...)
	if len(diffs) == 0 && !slices.Equal(want, have) {
		diffs = append(diffs, fmt.Sprintf("chain %s: rules out of order", name))
	}
	return diffs
}

// diffSet compares the desired set s of family fam with what ipset saved.
func diffSet(s Set, fam Family, saved *savedSet) []string {
	if saved == nil {
		return []string{fmt.Sprintf("set %s missing", s.Name)}
	}
	if saved.Type != s.Type || saved.Family != fam {
		return []string{fmt.Sprintf("set %s is %s family %s, want %s family %s",
			s.Name, saved.Type, saved.Family.SetFamily(), s.Type, fam.SetFamily())}
	}
	want := make(map[string]bool, len(s.Members))
	for _, m := range s.Members {
		want[memberKey(s.Type, m.Entry, m.NoMatch)] = true
	}
	var missing, extra []string
	for k := range want {
		if !saved.Members[k] {
			missing = append(missing, k)
		}
	}
	for k := range saved.Members {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	diffs := describe("set "+s.Name+": missing member: ", missing)
	return append(diffs, describe("set "+s.Name+": unexpected member: ", extra)...)
}

// multisetDiff returns the lines of want not in have and of have not in
// want, counting duplicates, in their order.
func multisetDiff(want, have []string) (missing, extra []string) {
	count := make(map[string]int, len(have))
	for _, l := range have {
		count[l]++
	}
	for _, l := range want {
		if count[l] > 0 {
			count[l]--
		} else {
			missing = append(missing, l)
		}
	}
	for _, l := range have {
		if count[l] > 0 {
			count[l]--
			extra = append(extra, l)
		}
	}
	return missing, extra
}

// describe prefixes each item, keeping at most maxDiffsPerItem lines.
func describe(prefix string, items []string) []string {
	var out []string
	for i, it := range items {
		if i == maxDiffsPerItem {
			out = append(out, fmt.Sprintf("%s... and %d more", prefix, len(items)-i))
			break
		}
		out = append(out, prefix+it)
	}
	return out
}
