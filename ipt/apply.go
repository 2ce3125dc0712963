package ipt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// plan is the validated input of one Apply.
type plan struct {
	byFamily map[Family]*Ruleset
	sets     []Set           // every desired set of both families, Family set
	wanted   map[string]bool // names of sets, and of their temps
}

// Apply makes the kernel hold rulesets (at most one per family). Per family,
// as one unit (IPv4 then IPv6, or both at once with the nft backend, see
// forFamilies):
//
//  1. one `ipset -exist restore` (over netlink in the process's own
//     namespace, see ipsetRestore) creates the family's missing desired sets
//     and adds to every changed one the members it lacks (RenderSets, grow;
//     what it holds is read first, see applyFamily), so the rules below can
//     reference them and no pod leaves a set before the rules that use its
//     new ones are in;
//  2. if chains changed, a hook is missing or chains are stale, one
//     `iptables-restore -w --noflush` transaction declares and fills the
//     chains that changed, inserts each missing Hook (`-I CHAIN POS`, after
//     its target chain is declared), deletes the hooks that jump to a stale
//     chain, and deletes the stale chains (-X). Chains that did not change
//     are not touched. Hooks already present are left where they are; POS is
//     clamped to the end of a shorter chain;
//  3. one `ipset -exist restore` gives every changed set exactly its members
//     (RenderSets, shrink: a temporary swapped in).
//
// In the process's own network namespace, a family whose changed sets all
// exist already and differ from the kernel's by at most netlinkDiffMax
// members, none with nomatch, runs steps 1 and 3 over netlink instead: the
// missing members are added, then the superfluous ones deleted, and no
// `ipset` process runs (applyFamily; a netlink step that fails falls back
// to its restore).
//
// When step 1 or 2 fails, the members step 1 added are deleted again (and
// only those: a member the plugin added since the last Apply stays): the
// family keeps its old rules with its old sets, and the other family is
// still applied. So a failed Apply leaves each family entirely old or
// entirely new (unless a shrink itself fails), returns every family's error
// (a failed transaction as a *RestoreError), and destroys no set. After
// every family succeeded, the sets of ours that no ruleset wants (of the
// families in rulesets) are destroyed, now that no rule references them,
// and the emptied temporaries.
//
// Apply owns the cleanup of what it applied: a stale chain is one of ours
// (Owned) that the family's ruleset does not have. While the Runner's memory
// is valid, those are the chains of the last successful Apply; otherwise (a
// new Runner, the first Apply after a failure or Forget) the kernel's own
// listing (`iptables-save -t filter`) names them, so that any chain of ours
// left by a sync that was killed or failed half-way is removed. The first
// Apply of a Runner, the first after a failure and the first after Forget
// also rewrite every set and chain that the kernel, read back, does not
// hold exactly. A family absent from rulesets is not touched at all: its
// chains and sets stay.
func (r *Runner) Apply(ctx context.Context, rulesets []Ruleset) (err error) {
	r.mu.Lock()
	r.applied = ""
	r.mu.Unlock()
	p, err := newPlan(rulesets)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	now := fingerprint(rulesets)
	r.mu.Lock()
	mem := r.memory
	r.memory = memory{} // until this Apply succeeds, nothing is known
	r.mu.Unlock()
	defer func() {
		if err == nil {
			r.mu.Lock()
			r.memory = memory{valid: true, prints: now}
			r.mu.Unlock()
		}
	}()
	existing := mem.existing()
	var current map[string]*savedSet // the kernel's members, when memory cannot tell
	if !mem.valid {
		proving := r.startProof(ctx)
		defer func() {
			if err == nil {
				r.finishProof(proving, now, p)
			}
		}()
		out, err := r.run(ctx, nil, "ipset", "save")
		if err != nil {
			return fmt.Errorf("apply: read sets: %w", err)
		}
		current = parseIPSetSave(string(out))
		existing = make(map[string]SetInfo, len(current))
		for name, s := range current {
			existing[name] = s.SetInfo
		}
		if err := r.destroySets(ctx, tempSets(existing)); err != nil {
			return fmt.Errorf("apply: leftover temporary sets: %w", err)
		}
	}
	changed := mem.changedSets(p.sets, now, existing)
	if current != nil {
		// A fresh Runner (agent restart): leave alone the sets that already
		// hold exactly their members.
		changed = slices.DeleteFunc(changed, func(s Set) bool { return len(diffSet(s, s.Family, current[s.Name])) == 0 })
	}
	// The families side by side where the backend allows (forFamilies). A
	// family that fails does not stop the other: each ends entirely old or
	// entirely new.
	var fams []Family
	for _, fam := range Families {
		if p.byFamily[fam] != nil {
			fams = append(fams, fam)
		}
	}
	var tempsMu sync.Mutex
	noTemps := make(map[Family]bool) // families whose sets shrank over netlink
	errs := r.forFamilies(ctx, fams, func(fam Family) error {
		sets := slices.DeleteFunc(slices.Clone(changed), func(s Set) bool { return s.Family != fam })
		overNetlink, err := r.applyFamily(ctx, p.byFamily[fam], sets, existing, current, &mem, now)
		if err != nil {
			return fmt.Errorf("apply %s: %w", fam, err)
		}
		tempsMu.Lock()
		noTemps[fam] = overNetlink
		tempsMu.Unlock()
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var gone []string
	for name, info := range existing {
		if Owned(name) && !p.wanted[name] && !strings.HasPrefix(name, tempPrefix) && p.byFamily[info.Family] != nil {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	if err := r.destroySets(ctx, gone); err != nil {
		return fmt.Errorf("apply: destroy stale sets: %w", err)
	}
	// The temporaries of step 3 are empty and referenced by no rule; one that
	// a concurrent reader keeps busy now is destroyed by the next Apply. A
	// family whose sets shrank over netlink made none.
	var temps []string
	for _, s := range changed {
		if _, ok := existing[s.Name]; ok && !noTemps[s.Family] {
			temps = append(temps, TempSetName(s.Name))
		}
	}
	_ = r.destroySets(ctx, temps)
	return nil
}

// ipsetRestoreBusy is ipsetRestore, retried a few times, briefly, when the
// kernel answers that a set is busy: it refuses to swap or destroy a set
// while another process dumps it (`ipset list`). The inputs Apply sends are
// idempotent under -exist (create, add, swap into place, flush), so running
// one again after a partial failure is safe.
func (r *Runner) ipsetRestoreBusy(ctx context.Context, input []byte) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
			}
		}
		if err = r.ipsetRestore(ctx, input); err == nil || !isBusy(err) {
			return err
		}
	}
	return err
}

// isBusy reports whether ipset failed because a set was in use.
func isBusy(err error) bool {
	s := err.Error()
	return strings.Contains(s, "resource busy") || strings.Contains(s, "in use by a kernel component")
}

// tempSets returns the temporary sets among existing, sorted.
func tempSets(existing map[string]SetInfo) []string {
	var out []string
	for name := range existing {
		if strings.HasPrefix(name, tempPrefix) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// destroySets destroys sets that no rule references. The kernel refuses to
// destroy a set while another process is dumping it (`ipset list` holds it
// for the dump): such a refusal is retried a few times, briefly.
func (r *Runner) destroySets(ctx context.Context, names []string) error {
	var err error
	for attempt := 0; attempt < 4 && len(names) > 0; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
			}
			left, lerr := r.listSetNames(ctx)
			if lerr != nil {
				return lerr
			}
			names = slices.DeleteFunc(names, func(n string) bool { return !left[n] })
		}
		if err = r.ipsetRestore(ctx, renderDestroySets(names)); err == nil {
			return nil
		}
	}
	return err
}

// newPlan validates the input of Apply.
func newPlan(rulesets []Ruleset) (*plan, error) {
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
		}
	}
	return p, nil
}

// applyRules runs the iptables-restore transaction of one family, declaring
// and filling only the chains that changed since mem; none at all when no
// chain changed, no chain is stale and every hook is in place.
//
// While mem is valid for the family, it names the chains there (stale: those
// rs lacks) and says whether the hooks are in place; a built-in chain is
// read back (`iptables -S CHAIN`) only to place changed hooks or to unhook
// stale chains. Otherwise one `iptables-save -t filter` lists the chains of
// ours and the hooks.
func (r *Runner) applyRules(ctx context.Context, rs *Ruleset, mem *memory, now prints) error {
	desired := make(map[string]bool, len(rs.Chains))
	for _, c := range rs.Chains {
		desired[c.Name] = true
	}
	known, ok := mem.chainNames(rs.Family)
	current := make(map[BuiltinChain][]string)
	var t *savedTable
	if !ok {
		var err error
		if t, err = r.saveFilter(ctx, rs.Family); err != nil {
			return err
		}
		known = t.ownedChains()
		for _, c := range builtinChains {
			current[c] = t.Rules[string(c)]
		}
	}
	stale := staleToDrop(known, desired)
	drop := make(map[string]bool, len(stale))
	for _, n := range stale {
		drop[n] = true
	}
	hooksInPlace := ok && mem.hooksInPlace(rs.Family, now)
	if ok {
		var read []BuiltinChain
		if !hooksInPlace {
			for _, h := range rs.Hooks {
				read = append(read, h.Chain)
			}
		}
		if len(drop) > 0 {
			read = append(read, builtinChains...)
		}
		slices.Sort(read)
		for _, c := range slices.Compact(read) {
			out, err := r.iptables(ctx, rs.Family, "-S", string(c))
			if err != nil {
				return err
			}
			current[c] = parseSave(string(out)).Rules[string(c)]
		}
	}
	hooks := planHooks(rs.Hooks, current, drop)
	if hooksInPlace {
		hooks = planHooks(nil, current, drop) // only unhook stale chains
	}
	changed := mem.changedChains(rs, now)
	if t != nil {
		// Memory knows nothing: leave alone the chains the kernel holds
		// rule for rule, as read back.
		changed = slices.DeleteFunc(changed, func(c Chain) bool { return len(diffChain(c, t)) == 0 })
	}
	if len(changed) == 0 && len(drop) == 0 && len(hooks) == 0 {
		return nil
	}
	partial := *rs
	partial.Chains = changed
	return r.restore(ctx, rs.Family, renderTransaction(&partial, stale, hooks))
}

// hookIndex is the 0-based index hook h must have in a built-in chain that
// holds n other rules: its Position, clamped to the chain's end.
func hookIndex(h Hook, n int) int { return min(max(h.Position, 1), n+1) - 1 }

// planHooks returns the restore lines that delete the rules of current
// (built-in chain -> its rules) jumping to a dropped chain, then insert every
// hook missing from its chain or not at its Position (clamped to the chain's
// end), which it then moves there.
func planHooks(hooks []Hook, current map[BuiltinChain][]string, drop map[string]bool) []string {
	var ops []string
	live := make(map[BuiltinChain][]string, len(current))
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
		if c := strings.Compare(string(a.Chain), string(b.Chain)); c != 0 {
			return c
		}
		return a.Position - b.Position
	})
	for _, h := range sorted {
		line := RenderRule(string(h.Chain), h.Rule)
		at := slices.Index(live[h.Chain], line)
		if at >= 0 && at == hookIndex(h, len(live[h.Chain])-1) {
			continue
		}
		if at >= 0 {
			// Present but pushed down (another tool inserted rules above it,
			// which could accept traffic before policy sees it): move it.
			ops = append(ops, asDelete(line))
			live[h.Chain] = slices.Delete(live[h.Chain], at, at+1)
		}
		pos := hookIndex(h, len(live[h.Chain])) + 1
		live[h.Chain] = slices.Insert(live[h.Chain], pos-1, line)
		ops = append(ops, "-I "+string(h.Chain)+" "+strconv.Itoa(pos)+strings.TrimPrefix(line, "-A "+string(h.Chain)))
	}
	return ops
}
