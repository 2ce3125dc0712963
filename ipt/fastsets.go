package ipt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// ErrNoChange is returned by ApplyChange when it cannot go from prev to
// next by itself: the Runner remembers no successful Apply, a family or
// the hooks appear or disappear, a set changes type, or an ipBlock member
// changes its nomatch flag. Nothing was changed; the caller runs Apply.
var ErrNoChange = errors.New("not a change ApplyChange makes")

// ApplyChange makes the kernel go from prev, the rulesets this Runner last
// installed (by Apply or ApplyChange) with the members the plugin added or
// deleted since folded in, to next, touching only what differs. Per
// family, each a unit as in Apply (the two side by side with the nft
// backend when chains change, see forFamilies), it keeps Apply's order
// and guarantees:
//
//  1. grow: sets next adds are created and filled (`ipset restore`), and the
//     members next adds to existing sets are added over netlink (AddEntries:
//     no process);
//  2. rules: only when chains differ, one `iptables-restore -w --noflush`
//     declares and fills the changed and new chains and deletes the ones
//     next drops;
//  3. shrink: the members next drops are deleted over netlink, then the
//     sets next drops are destroyed.
//
// When step 1 or 2 fails, the members step 1 added are deleted again (they
// were not in prev, so none is one the plugin added), and the family keeps
// its old rules and sets; the other family is still changed, and every
// family's error is returned. ErrNoChange for a family's hooks or memory
// comes before anything is changed. Any failure leaves the Runner without memory, so
// the next Apply rewrites everything after listing the kernel; the caller
// should run it at once. Unlike Apply, it reads nothing back: it trusts
// prev, which the caller's periodic Diff checks.
func (r *Runner) ApplyChange(ctx context.Context, prev, next []Ruleset) error {
	r.mu.Lock()
	mem := r.memory
	r.memory = memory{} // until this change succeeds, nothing is known
	r.mu.Unlock()
	if !mem.valid {
		return ErrNoChange
	}
	after := memory{valid: true, prints: prints{sets: maps.Clone(mem.sets), setInfo: maps.Clone(mem.setInfo),
		chains: map[Family]map[string][32]byte{}, hooks: maps.Clone(mem.hooks)}}
	for f, c := range mem.chains {
		after.chains[f] = maps.Clone(c)
	}
	var fams []Family
	for _, fam := range Families {
		p, n := findRuleset(prev, fam), findRuleset(next, fam)
		if p == nil && n == nil {
			continue
		}
		if _, known := mem.chains[fam]; p == nil || n == nil || !known || !reflect.DeepEqual(p.Hooks, n.Hooks) {
			return ErrNoChange
		}
		fams = append(fams, fam)
	}
	var afterMu sync.Mutex // after's set maps, which both families write
	change := func(fam Family) error {
		if err := r.changeFamily(ctx, findRuleset(prev, fam), findRuleset(next, fam), &after, &afterMu); err != nil {
			return fmt.Errorf("apply %s: %w", fam, err)
		}
		return nil
	}
	// Side by side only when a family has an iptables-restore to wait for:
	// a change of set members alone is a few milliseconds of CPU and
	// netlink per family, which a second thread would take from the CNI
	// ADDs running meanwhile rather than save.
	var errs []error
	if rulesChange(prev, next, fams) {
		errs = r.forFamilies(ctx, fams, change)
	} else {
		for _, fam := range fams {
			errs = append(errs, change(fam))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.mu.Lock()
	r.memory = after
	r.mu.Unlock()
	return nil
}

// setChange is what one family's sets need to go from prev to next.
type setChange struct {
	created    []Set // sets next has and prev lacks
	adds, dels []Entry
	gone       []string // sets prev has and next lacks
	changed    []Set    // sets of next whose members differ (for memory)
}

// diffSets compares the sets of one family; ErrNoChange for a change of
// type or of a nomatch member.
func diffSets(prev, next []Set, fam Family) (*setChange, error) {
	c := &setChange{}
	before := make(map[string]*Set, len(prev))
	for i := range prev {
		before[prev[i].Name] = &prev[i]
	}
	for _, s := range next {
		s.Family = fam
		p := before[s.Name]
		delete(before, s.Name)
		if p == nil {
			c.created = append(c.created, s)
			continue
		}
		if p.Type != s.Type {
			return nil, ErrNoChange
		}
		if slices.Equal(p.Members, s.Members) {
			continue
		}
		adds, dels, ok := diffMembers(s.Name, p.Members, s.Members)
		if !ok {
			return nil, ErrNoChange
		}
		if len(adds)+len(dels) > 0 {
			c.adds, c.dels = append(c.adds, adds...), append(c.dels, dels...)
			c.changed = append(c.changed, s)
		}
	}
	c.gone = slices.Sorted(maps.Keys(before))
	return c, nil
}

// diffMembers returns the entries of set name that next adds and drops;
// false when a member with nomatch is added or dropped (AddEntries cannot
// express the flag).
func diffMembers(name string, prev, next []Member) (adds, dels []Entry, ok bool) {
	had := make(map[string]bool, len(prev))
	for _, m := range prev {
		had[m.Entry] = m.NoMatch
	}
	for _, m := range next {
		nm, found := had[m.Entry]
		delete(had, m.Entry)
		switch {
		case found && nm == m.NoMatch:
		case found || m.NoMatch:
			return nil, nil, false
		default:
			adds = append(adds, Entry{Set: name, Value: m.Entry})
		}
	}
	for _, e := range slices.Sorted(maps.Keys(had)) {
		if had[e] {
			return nil, nil, false
		}
		dels = append(dels, Entry{Set: name, Value: e})
	}
	return adds, dels, true
}

// diffChains returns the chains of next that prev lacks or whose rules
// differ, and the names of prev's chains that next lacks.
func diffChains(prev, next []Chain) (changed []Chain, stale []string) {
	before := make(map[string]*Chain, len(prev))
	for i := range prev {
		before[prev[i].Name] = &prev[i]
	}
	for _, c := range next {
		p := before[c.Name]
		delete(before, c.Name)
		if p == nil || !sameRules(p.Rules, c.Rules) {
			changed = append(changed, c)
		}
	}
	return changed, slices.Sorted(maps.Keys(before))
}

// sameRules reports whether two chains' rules are equal; rules that are
// the same slice (a caller that kept what did not change) are not compared.
func sameRules(a, b []Rule) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// rulesChange reports whether going from prev to next rewrites chains in
// any of fams.
func rulesChange(prev, next []Ruleset, fams []Family) bool {
	for _, fam := range fams {
		if chains, stale := diffChains(findRuleset(prev, fam).Chains, findRuleset(next, fam).Chains); len(chains)+len(stale) > 0 {
			return true
		}
	}
	return false
}

// changeFamily is ApplyChange for one family; it records in mem what it
// installed, holding memMu while it writes mem's set maps (the other
// family may be recording its own).
func (r *Runner) changeFamily(ctx context.Context, prev, next *Ruleset, mem *memory, memMu *sync.Mutex) error {
	sets, err := diffSets(prev.Sets, next.Sets, next.Family)
	if err != nil {
		return err
	}
	chains, stale := diffChains(prev.Chains, next.Chains)
	partial := &Ruleset{Family: next.Family, Chains: chains, Sets: sets.created}
	if err := Validate(partial); err != nil {
		return err
	}
	create, _, err := RenderSets(sets.created, nil, nil)
	if err != nil {
		return err
	}
	err = r.ipsetRestoreBusy(ctx, create)
	if err == nil {
		err = r.AddEntries(ctx, sets.adds)
	}
	if err != nil {
		err = fmt.Errorf("sets: %w", err)
	} else if len(chains)+len(stale) > 0 {
		err = r.restore(ctx, next.Family, renderTransaction(partial, stale, nil))
	}
	if err != nil {
		// The added members were in no set of prev: none is the plugin's.
		if uerr := r.DelEntries(ctx, sets.adds); uerr != nil {
			return errors.Join(err, fmt.Errorf("remove the members added to the sets: %w", uerr))
		}
		return err
	}
	if err := r.DelEntries(ctx, sets.dels); err != nil {
		return fmt.Errorf("sets: %w", err)
	}
	if err := r.destroySets(ctx, sets.gone); err != nil {
		return fmt.Errorf("destroy stale sets: %w", err)
	}
	memMu.Lock()
	for _, s := range slices.Concat(sets.created, sets.changed) {
		mem.sets[s.Name] = setPrint(s, next.Family)
		mem.setInfo[s.Name] = SetInfo{Type: s.Type, Family: next.Family}
	}
	for _, name := range sets.gone {
		delete(mem.sets, name)
		delete(mem.setInfo, name)
	}
	memMu.Unlock()
	known := mem.chains[next.Family] // this family's own map
	for _, c := range chains {
		known[c.Name] = chainPrint(c)
	}
	for _, name := range stale {
		delete(known, name)
	}
	return nil
}

func findRuleset(rulesets []Ruleset, f Family) *Ruleset {
	for i := range rulesets {
		if rulesets[i].Family == f {
			return &rulesets[i]
		}
	}
	return nil
}

// ChangeSummary describes what ApplyChange would do from prev to next:
// members added and dropped, sets created and destroyed, chains written
// and deleted (logs and benchmarks).
func ChangeSummary(prev, next []Ruleset) string {
	var adds, dels, created, gone, chains, stale int
	for _, n := range next {
		p := findRuleset(prev, n.Family)
		if p == nil {
			continue
		}
		if c, err := diffSets(p.Sets, n.Sets, n.Family); err == nil {
			adds, dels, created, gone = adds+len(c.adds), dels+len(c.dels), created+len(c.created), gone+len(c.gone)
		}
		ch, st := diffChains(p.Chains, n.Chains)
		chains, stale = chains+len(ch), stale+len(st)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "+%d -%d members, +%d -%d sets, %d chains written, %d deleted", adds, dels, created, gone, chains, stale)
	return b.String()
}
