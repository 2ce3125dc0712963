package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
)

// applied is what the agent last committed: the kernel holds compiled's
// rulesets (plus what the plugin's ADD and DEL did since, by compiled's
// index, which is the stored one), made of snap and the records atts.
type applied struct {
	src      *policy.Snapshot // the snapshot Sync was given (snap is made of it)
	snap     *policy.Snapshot
	atts     []policy.Attachment
	stamp    [32]byte // state.Store.RecordsStamp of atts (zero: unknown)
	compiled *policy.Compiled
}

// records is one read of the pod records and its stamp.
type records struct {
	stamp [32]byte
	atts  []policy.Attachment
}

// records returns the pod records and their stamp, taken before they were
// read: the records of the last commit when the stamp says nothing
// changed since, without reading them again.
func (a *Agent) records() ([32]byte, []policy.Attachment, error) {
	stamp, err := a.Store.RecordsStamp()
	if err != nil {
		return stamp, nil, fmt.Errorf("read pod records: %w", err)
	}
	if l := a.last; l != nil && l.stamp == stamp && stamp != ([32]byte{}) {
		return stamp, l.atts, nil
	}
	atts, err := a.attachments()
	return stamp, atts, err
}

// compile returns the desired state of snap with the records atts: patched
// from the last committed state (policy.Patch) when it can be, compiled
// whole otherwise, or always whole with FullSync.
func (a *Agent) compile(snap *policy.Snapshot, atts []policy.Attachment) (*policy.Compiled, error) {
	if l := a.last; l != nil && !a.FullSync {
		if l.snap == snap && sameAttachments(l.atts, atts) {
			return l.compiled, nil
		}
		c, ok, err := policy.Patch(l.compiled, l.snap, l.atts, snap, atts)
		if err != nil || ok {
			return c, err
		}
	}
	return policy.Compile(snap, atts)
}

// recompile is compile for records that changed between the compile done
// without the lock (c, of before) and the commit (now): a pod ADD recorded
// or DEL removed meanwhile. Only this node's pods differ, so the patch
// costs a compile of them alone.
func (a *Agent) recompile(c *policy.Compiled, snap *policy.Snapshot, before, now []policy.Attachment) (*policy.Compiled, error) {
	if !a.FullSync {
		if p, ok, err := policy.Patch(c, snap, before, snap, now); err != nil || ok {
			return p, err
		}
	}
	return policy.Compile(snap, now)
}

// program makes the kernel hold compiled. After a committed sync, with
// IPv6 on, it goes from the last committed rulesets, with the plugin's
// changes since folded in (kernelBefore), to the new ones, touching only
// what differs (ipt ApplyChange). Otherwise, or when that fails, it applies
// everything (apply: the kernel is read where memory cannot tell).
func (a *Agent) program(ctx context.Context, compiled *policy.Compiled, atts []policy.Attachment) (disabled []ipt.Family, fast bool, err error) {
	if l := a.last; l != nil && !a.FullSync && !a.ipv6Off {
		if l.compiled == compiled && sameAttachments(l.atts, atts) {
			return nil, true, nil // nothing changed: the kernel holds it
		}
		err := a.Kernel.ApplyChange(ctx, kernelBefore(l, atts), compiled.Rulesets)
		if err == nil {
			return nil, true, nil
		}
		if !errors.Is(err, ipt.ErrNoChange) {
			a.Log.Warn("incremental sync failed; applying everything", "err", err)
		}
		a.Kernel.Forget()
	}
	disabled, err = a.apply(ctx, compiled.Rulesets, atts)
	return disabled, false, err
}

// kernelBefore is what the kernel's sets hold after the last commit l and
// the plugin's ADDs and DELs since: each record added since put its
// addresses into the sets l's index names for it, each removed one took
// them out (policy.Index.Entries, Release: what the plugin ran). Sets
// untouched by them are shared with l, not copied.
func kernelBefore(l *applied, atts []policy.Attachment) []ipt.Ruleset {
	added, removed := diffAttachments(l.atts, atts)
	if len(added)+len(removed) == 0 {
		return l.compiled.Rulesets
	}
	idx := &l.compiled.Index
	add, del := map[ipt.Entry]bool{}, map[ipt.Entry]bool{}
	touched := map[string]bool{} // the sets they name: only these are folded
	for i := range added {
		for _, e := range idx.Entries(&added[i]) {
			add[e], touched[e.Set] = true, true
		}
	}
	for i := range removed {
		for _, e := range idx.Release(&removed[i], atts) {
			del[e], add[e], touched[e.Set] = true, false, true
		}
	}
	out := slices.Clone(l.compiled.Rulesets)
	for i := range out {
		rs := &out[i]
		rs.Sets = slices.Clone(rs.Sets)
		for j := range rs.Sets {
			s := &rs.Sets[j]
			if !touched[s.Name] {
				continue
			}
			members, changed := foldEntries(s, add, del)
			if changed {
				s.Members = members
			}
		}
	}
	return out
}

// foldEntries returns the members of s with the entries of add (true) put
// in and those of del taken out, and whether that changed anything.
func foldEntries(s *ipt.Set, add, del map[ipt.Entry]bool) ([]ipt.Member, bool) {
	var out []ipt.Member
	changed := false
	have := map[string]bool{}
	for _, m := range s.Members {
		if del[ipt.Entry{Set: s.Name, Value: m.Entry}] {
			changed = true
			continue
		}
		have[m.Entry] = true
		out = append(out, m)
	}
	for e, in := range add {
		if in && e.Set == s.Name && !have[e.Value] {
			out = append(out, ipt.Member{Entry: e.Value})
			changed = true
		}
	}
	slices.SortFunc(out, func(a, b ipt.Member) int { return strings.Compare(a.Entry, b.Entry) })
	return out, changed
}

// diffAttachments returns the records of now that before lacks (or that
// changed) and those of before that now lacks (or that changed).
func diffAttachments(before, now []policy.Attachment) (added, removed []policy.Attachment) {
	key := func(a *policy.Attachment) string {
		return a.ContainerID + "\x00" + a.IfName + "\x00" + a.PodKey() + "\x00" + strings.Join(a.IPs, ",") + "\x00" + a.Created.String()
	}
	was := make(map[string]bool, len(before))
	for i := range before {
		was[key(&before[i])] = true
	}
	is := make(map[string]bool, len(now))
	for i := range now {
		k := key(&now[i])
		is[k] = true
		if !was[k] {
			added = append(added, now[i])
		}
	}
	for i := range before {
		if !is[key(&before[i])] {
			removed = append(removed, before[i])
		}
	}
	return added, removed
}

// sameAttachments reports whether two reads of the records found the same.
func sameAttachments(a, b []policy.Attachment) bool {
	added, removed := diffAttachments(a, b)
	return len(added)+len(removed) == 0
}
