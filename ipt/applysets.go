package ipt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// applyFamily makes the kernel hold rs, one family: it grows the family's
// changed sets, runs its rules transaction (applyRules), then shrinks the
// sets to exactly their members. Before the growth it reads what the sets to
// grow hold now (current, on a fresh Runner; otherwise readMembers: memory
// does not know what the plugin added since), and grows them only by the
// members they lack. When the growth or the transaction fails, it removes
// exactly those members again, so that the family's old rules run with
// their old sets and every member the plugin added is kept; sets it created
// are left, unreferenced. When the sets cannot be read, nothing is changed.
//
// In the process's own network namespace (NetNS empty), when every changed
// set exists as it should and few members change, none of them nomatch
// (memberDiff), the growth adds and the shrink deletes those members over
// netlink, in the same order, and no temporary is made: it then reports
// true. A netlink step that fails falls back to its restore (the growth's
// is idempotent under -exist; the shrink's temporary and swap make each set
// exact whatever the netlink deletes did).
func (r *Runner) applyFamily(ctx context.Context, rs *Ruleset, changed []Set, existing map[string]SetInfo,
	current map[string]*savedSet, mem *memory, now prints) (shrunkOverNetlink bool, err error) {
	before := current
	if before == nil {
		if before, err = r.readMembers(ctx, changed, existing); err != nil {
			return false, fmt.Errorf("sets: read the members before growing them: %w", err)
		}
	}
	grow, shrink, err := RenderSets(changed, existing, before)
	if err != nil {
		return false, err
	}
	var adds, dels []Entry
	small := false
	if r.NetNS == "" {
		adds, dels, small = memberDiff(changed, existing, before)
	}
	if small && (len(adds) == 0 || netlinkSetEntries(ctx, true, adds)) {
		grow = nil
	}
	err = r.ipsetRestoreBusy(ctx, grow)
	if err == nil {
		err = r.applyRules(ctx, rs, mem, now)
		if err == nil {
			if small && (len(dels) == 0 || netlinkSetEntries(ctx, false, dels)) {
				return true, nil
			}
			if err := r.ipsetRestoreBusy(ctx, shrink); err != nil {
				return false, fmt.Errorf("sets: %w", err)
			}
			return false, nil
		}
	} else {
		err = fmt.Errorf("sets: %w", err)
	}
	prev := func(name string) (map[string]bool, bool) {
		if s := before[name]; s != nil {
			return s.Members, true
		}
		return nil, false
	}
	undo := renderUngrow(changed, existing, prev)
	if uerr := r.ipsetRestoreBusy(ctx, undo); uerr != nil {
		return false, errors.Join(err, fmt.Errorf("remove the members added to the sets: %w", uerr))
	}
	return false, err
}

// netlinkDiffMax is the most members (added plus deleted, over one family's
// changed sets) that Apply changes over netlink request by request rather
// than with its restores. The requests cost ~7-8 us a member
// (BenchmarkMemberChange: 256 added and deleted in 1.9 ms, written 64 at a
// time); the restores batch a set's members into one message, but the
// shrink refills the whole set into a temporary and swaps it in, which
// grows with the set, not the diff. At 256 the requests stay at about 2 ms:
// a diff larger than that is not the small change (a pod's labels, a few
// pods) this path is for, and goes through the restores.
const netlinkDiffMax = 256

// netlinkSetEntries is netlinkEntries; tests replace it to make it fail
// half-way.
var netlinkSetEntries = netlinkEntries

// memberDiff returns the members to add to and delete from changed (one
// family's sets) so that each holds exactly its members, given before (what
// the kernel holds, memberKey forms), with values in memberKey form. It
// reports false, and the caller uses `ipset restore`, when any set is not
// in existing with the same type and family or was not read, when a nomatch
// member would be added, dropped or flipped (AddEntries cannot express the
// flag, and an ipBlock's except must never be missing), when an entry
// cannot be sent over netlink exactly, or when more than netlinkDiffMax
// members change.
func memberDiff(changed []Set, existing map[string]SetInfo, before map[string]*savedSet) (adds, dels []Entry, ok bool) {
	for _, s := range changed {
		info, found := existing[s.Name]
		had := before[s.Name]
		if !found || info.Type != s.Type || info.Family != s.Family || had == nil {
			return nil, nil, false
		}
		want := make(map[string]bool, len(s.Members))
		for _, m := range s.Members {
			key := memberKey(s.Type, m.Entry, m.NoMatch)
			want[key] = true
			if had.Members[key] {
				continue
			}
			if m.NoMatch || had.Members[key+" nomatch"] || !netlinkable(s, key) {
				return nil, nil, false
			}
			adds = append(adds, Entry{Set: s.Name, Value: key})
		}
		for _, key := range slices.Sorted(maps.Keys(had.Members)) {
			if want[key] {
				continue
			}
			if strings.HasSuffix(key, " nomatch") || !netlinkable(s, key) {
				return nil, nil, false
			}
			dels = append(dels, Entry{Set: s.Name, Value: key})
		}
		if len(adds)+len(dels) > netlinkDiffMax {
			return nil, nil, false
		}
	}
	return adds, dels, true
}

// netlinkable reports whether netlinkEntry encodes key, a member of s in
// memberKey form, as exactly that member: one it encodes at all (not
// IPv4-mapped, no prefix of length 0), an address of the set's family, and
// a prefix only in a hash:net set (a hash:ip set would take a range).
func netlinkable(s Set, key string) bool {
	ent, ok := netlinkEntry(key)
	if !ok {
		return false
	}
	a, ok := netip.AddrFromSlice(ent.IP)
	if !ok || a.Is4() != (s.Family == IPv4) {
		return false
	}
	addr, _, _ := strings.Cut(key, ",")
	return !strings.Contains(addr, "/") || s.Type == HashNet
}
