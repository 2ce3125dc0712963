package agent

import (
	"cmp"
	"slices"
	"strings"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
)

// transitionIndex is the index the plugin reads while a sync moves the
// kernel from what prev describes to what next describes. The plugin waits
// for the lock a sync holds, so it reads this index only when the sync died
// (or failed) half-way, the kernel then partly prev's and partly next's:
//
//   - a pod known to both belongs to its sets of both, so that the rules of
//     either side that test it find it (isolated by both, a peer of both);
//   - a pod known to one side only belongs to its sets of that side and,
//     when its namespace is isolated on either side, to the DENY set: the
//     other side would deny it as unknown;
//   - a namespace isolated on either side is isolated (unknown pods denied).
//
// A DEL then removes a pod from every set either side may have put it in.
func transitionIndex(prev, next *policy.Index) *policy.Index {
	out := &policy.Index{Version: next.Version, Pods: make(map[string][]policy.Membership, len(next.Pods))}
	out.Isolated = slices.Compact(slices.Sorted(slices.Values(slices.Concat(prev.Isolated, next.Isolated))))
	isolated := func(key string) bool {
		ns, _, _ := strings.Cut(key, "/")
		_, found := slices.BinarySearch(out.Isolated, ns)
		return found
	}
	for _, sides := range [][2]*policy.Index{{prev, next}, {next, prev}} {
		for key, ms := range sides[0].Pods {
			out.Pods[key] = append(out.Pods[key], ms...)
			if _, both := sides[1].Pods[key]; !both && isolated(key) {
				for _, f := range ipt.Families {
					out.Pods[key] = append(out.Pods[key], policy.Membership{Family: f, Set: policy.DenySet(f)})
				}
			}
		}
	}
	for key, ms := range out.Pods {
		slices.SortFunc(ms, func(a, b policy.Membership) int {
			return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Set, b.Set), cmp.Compare(a.Suffix, b.Suffix))
		})
		out.Pods[key] = slices.Compact(ms)
	}
	return out
}
