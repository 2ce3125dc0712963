package policy

import (
	"sort"

	"github.com/netpol/netpol/ipt"
)

// Entries returns the set entries the addresses of attachment a belong in,
// according to idx. A pod the index knows gets its memberships. A pod it does
// not know is denied (DENY set) when its namespace has a policy, or when
// there is no index at all (the agent has not synced: nothing is known, so
// fail closed); otherwise it is left unrestricted and belongs to no peer set
// until the agent learns its labels.
func (idx *Index) Entries(a *Attachment) []ipt.Entry {
	var out []ipt.Entry
	for _, ip := range a.IPs {
		fam, ok := ipFamily(ip)
		if !ok {
			continue
		}
		if ms, known := idx.pod(a.PodKey()); known {
			for _, m := range ms {
				if m.Family == fam {
					out = append(out, ipt.Entry{Set: m.Set, Value: ip + m.Suffix})
				}
			}
			continue
		}
		if idx == nil || idx.isIsolated(a.Namespace) {
			out = append(out, ipt.Entry{Set: DenySet(fam), Value: ip})
		}
	}
	return out
}

// Known reports whether the index knows the attachment's pod.
func (idx *Index) Known(a *Attachment) bool {
	_, ok := idx.pod(a.PodKey())
	return ok
}

// IsIsolated reports whether namespace ns has a policy, or whether there is no
// index to tell.
func (idx *Index) IsIsolated(ns string) bool { return idx == nil || idx.isIsolated(ns) }

func (idx *Index) pod(key string) ([]Membership, bool) {
	if idx == nil {
		return nil, false
	}
	ms, ok := idx.Pods[key]
	return ms, ok
}

func (idx *Index) isIsolated(ns string) bool {
	i := sort.SearchStrings(idx.Isolated, ns)
	return i < len(idx.Isolated) && idx.Isolated[i] == ns
}

// Release returns the entries to remove when attachment gone is deleted:
// everything its addresses may have been put in (its memberships and the
// DENY set), except entries still owed to one of the remaining attachments
// (two pods may have had the same address).
func (idx *Index) Release(gone *Attachment, remaining []Attachment) []ipt.Entry {
	keep := map[ipt.Entry]bool{}
	for i := range remaining {
		for _, e := range idx.Entries(&remaining[i]) {
			keep[e] = true
		}
	}
	candidates := idx.Entries(gone)
	for _, ip := range gone.IPs {
		if fam, ok := ipFamily(ip); ok {
			candidates = append(candidates, ipt.Entry{Set: DenySet(fam), Value: ip})
		}
	}
	var out []ipt.Entry
	seen := map[ipt.Entry]bool{}
	for _, e := range candidates {
		if !keep[e] && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}
