package policy

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/netpol/netpol/ipt"
)

// patchPeers is Patch for a change that only pods of other nodes made
// (labels, addresses, named ports, added or removed) while the policies,
// namespaces and records stayed: such a pod is in no group, DENY or
// dispatch set and in no index entry, so the rules, those sets and the
// index are prev's, and only its members of the peer and named-port sets
// change. Each of those sets is recomputed for the changed pods' addresses
// alone, from how prev says it is filled (podSets), without selecting
// this node's pods against the policies again. ok false when it cannot
// tell (prev does not say how its sets are filled, or a changed address
// is also recorded here): the caller then patches the long way.
func patchPeers(prev *Compiled, last, next *Snapshot, atts []Attachment, changed *podChanges) (*Compiled, bool) {
	if prev.podSets == nil {
		return nil, false
	}
	touched := map[string]bool{}
	var fresh []*Pod // the changed pods as they are now
	for k, s := range []*Snapshot{last, next} {
		for _, i := range [][]int{changed.last, changed.next}[k] {
			p := &s.Pods[i]
			for _, ip := range p.IPs {
				touched[canonicalIP(ip)] = true
			}
			if s == next {
				q := *p
				q.IPs = canonicalIPs(p.IPs)
				fresh = append(fresh, &q)
			}
		}
	}
	for _, a := range atts {
		if slices.ContainsFunc(a.IPs, func(ip string) bool { return touched[canonicalIP(ip)] }) {
			return nil, false
		}
	}
	nsLabels := map[string]labels.Set{}
	for _, p := range fresh {
		if _, ok := nsLabels[p.Namespace]; !ok {
			nsLabels[p.Namespace] = namespaceLabelsOf(next, p.Namespace)
		}
	}
	out := *prev
	out.Rulesets = slices.Clone(prev.Rulesets)
	for i := range out.Rulesets {
		rs := &out.Rulesets[i]
		rs.Sets = slices.Clone(rs.Sets)
		for j := range rs.Sets {
			s := &rs.Sets[j]
			src, ok := prev.podSets[s.Name]
			if !ok {
				if podSet(rs.Family, s.Name) {
					return nil, false // a pod set prev cannot say how to fill
				}
				continue
			}
			var add []ipt.Member
			for _, p := range fresh {
				for _, e := range src.entries(p, rs.Family, nsLabels[p.Namespace]) {
					add = append(add, ipt.Member{Entry: e})
				}
			}
			slices.SortFunc(add, func(a, b ipt.Member) int { return strings.Compare(a.Entry, b.Entry) })
			add = slices.CompactFunc(add, func(a, b ipt.Member) bool { return a.Entry == b.Entry })
			s.Members = mergeMembers(s.Members, add, touched)
		}
	}
	return &out, true
}

// namespaceLabelsOf returns the labels of namespace name in s, defaulted
// as the compiler's world does.
func namespaceLabelsOf(s *Snapshot, name string) labels.Set {
	for i := range s.Namespaces {
		if s.Namespaces[i].Name == name {
			return NamespaceLabels(name, s.Namespaces[i].Labels)
		}
	}
	return NamespaceLabels(name, nil)
}
