package ipt

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// ReadLive reads back what the kernel holds of ours in family fam, as a
// Ruleset: the hooks of the built-in chains that lead to our chains, every
// chain of ours with its rules (ParseRule), and every set of ours of fam
// with its members. It is what a packet meets now, whatever the agent
// last compiled. Equivalent to: `iptables-save -t filter` and `ipset save`.
func (r *Runner) ReadLive(ctx context.Context, fam Family) (*Ruleset, error) {
	t, err := r.saveFilter(ctx, fam)
	if err != nil {
		return nil, fmt.Errorf("read %s rules: %w", fam, err)
	}
	rs := &Ruleset{Family: fam}
	for _, line := range t.ownedHooks(nil) {
		chain, rule, err := ParseRule(line)
		if err != nil {
			return nil, err
		}
		rs.Hooks = append(rs.Hooks, Hook{Chain: BuiltinChain(chain), Rule: rule})
	}
	for _, name := range t.ownedChains() {
		c := Chain{Name: name}
		for _, line := range t.Rules[name] {
			_, rule, err := ParseRule(line)
			if err != nil {
				return nil, err
			}
			c.Rules = append(c.Rules, rule)
		}
		rs.Chains = append(rs.Chains, c)
	}
	out, err := r.run(ctx, nil, "ipset", "save")
	if err != nil {
		return nil, fmt.Errorf("read sets: %w", err)
	}
	rs.Sets = liveSets(parseIPSetSave(string(out)), fam)
	return rs, nil
}

// liveSets turns saved sets into the Sets of ours of family fam, sorted.
func liveSets(saved map[string]*savedSet, fam Family) []Set {
	var out []Set
	for name, s := range saved {
		if !Owned(name) || s.Family != fam {
			continue
		}
		set := Set{Name: name, Type: s.Type, Family: fam}
		for key := range s.Members {
			entry, noMatch := strings.CutSuffix(key, " nomatch")
			set.Members = append(set.Members, Member{Entry: entry, NoMatch: noMatch})
		}
		sort.Slice(set.Members, func(i, j int) bool { return set.Members[i].Entry < set.Members[j].Entry })
		out = append(out, set)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
