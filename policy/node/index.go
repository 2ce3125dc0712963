package node

import (
	"slices"
	"sort"

	"github.com/netpol/netpol/ipt"
)

// Admit decides what happens to the addresses of attachment a on ADD, by
// idx: a pod the index knows is KnownPod (Next: its memberships say which
// sets its addresses belong in); a pod it does not know is UnknownIsolated
// (Deny) when its namespace has a policy, and NoIndex (Deny) when there is
// no index at all (the agent has not synced: nothing is known, so fail
// closed); otherwise it is UnknownOpen (Allow): unrestricted, and in no peer
// set until the agent learns its labels.
func (idx *Index) Admit(a *Attachment) Verdict {
	_, known := idx.pod(a.PodKey())
	return Admission(idx != nil, known, idx != nil && idx.isIsolated(a.Namespace))
}

// Entries returns the set entries the addresses of attachment a belong in,
// as Admit decides: the pod's memberships (Next), the DENY set (Deny), or
// none (Allow). The isolated sets' entries come first: they are added one
// by one, and a pod that is isolated but in none of its group sets yet (an
// ADD cut short) is dropped at the end of the dispatch, while one in its
// group sets but not yet isolated would pass unrestricted.
func (idx *Index) Entries(a *Attachment) []ipt.Entry {
	action := idx.Admit(a).Action()
	ms, _ := idx.pod(a.PodKey())
	var out []ipt.Entry
	for _, ip := range a.IPs {
		fam, ok := AddressFamily(ip)
		if !ok {
			continue
		}
		switch action {
		case Next:
			for _, m := range ms {
				if m.Family == fam {
					out = append(out, ipt.Entry{Set: m.Set, Value: ip + m.Suffix})
				}
			}
		case Deny:
			out = append(out, ipt.Entry{Set: DenySet(fam), Value: ip})
		}
	}
	slices.SortStableFunc(out, func(x, y ipt.Entry) int { return gateOrder(y) - gateOrder(x) })
	return out
}

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
		if fam, ok := AddressFamily(ip); ok {
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
	// The gates go last: the pod stays restricted until its other entries are gone.
	slices.SortStableFunc(out, func(x, y ipt.Entry) int { return gateOrder(x) - gateOrder(y) })
	return out
}

// gateOrder is 1 for an entry of a set that decides whether a packet is
// restricted at all (isGate), else 0.
func gateOrder(e ipt.Entry) int {
	if isGate(e) {
		return 1
	}
	return 0
}
