package manifest

import (
	"cmp"
	"slices"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/policy"
)

// sortedObjects are the objects of a valid snapshot, each kind sorted by
// key as Builder.Snapshot sorts them: the declared namespaces (the
// snapshot's namespaces without those only pods and policies name), the
// pods and the policies.
type sortedObjects struct {
	declared []policy.Namespace
	pods     []policy.Pod
	policies []networkingv1.NetworkPolicy
}

// patch makes the snapshot of files from the last Load's (c.last), which
// files of c.files made: it removes the objects of the documents that
// changed files no longer hold and inserts those of their new documents,
// and validates only the latter. A Load of one changed pod costs a binary
// search and a copy of the pods, not a sort and a validation of all of
// them. It returns false when the result would not be valid (an invalid
// object, a name twice): then build makes the snapshot and names the
// error, as it would have without the patch. A valid snapshot is sorted by
// unique keys, so it is the same whichever way it was made.
func (c *Cache) patch(files map[string]*cached) (*policy.Snapshot, *sortedObjects, bool) {
	d, ok := diffFiles(c.files, files)
	if !ok {
		return nil, nil, false
	}
	next := &sortedObjects{}
	next.declared, ok = patchSorted(c.last.declared, d.delNamespaces, d.addNamespaces, namespaceOrder)
	if !ok {
		return nil, nil, false
	}
	if next.pods, ok = patchSorted(c.last.pods, d.delPods, d.addPods, compareKeys); !ok {
		return nil, nil, false
	}
	if next.policies, ok = patchSorted(c.last.policies, d.delPolicies, d.addPolicies, policyOrder); !ok {
		return nil, nil, false
	}
	namespaces, ok := withImplicit(next.declared, next.pods, next.policies)
	if !ok {
		return nil, nil, false
	}
	return &policy.Snapshot{
		Version:    policy.SnapshotVersion,
		Node:       c.node,
		Namespaces: namespaces,
		Pods:       next.pods,
		Policies:   next.policies,
	}, next, true
}

// delta is what changed between two loads: the objects of the documents
// only the first holds (del) and of those only the second holds (add).
type delta struct {
	delNamespaces, addNamespaces []policy.Namespace
	delPods, addPods             []policy.Pod
	delPolicies, addPolicies     []networkingv1.NetworkPolicy
}

// diffFiles returns the delta from the files from to the files to, file by
// file where the content changed, document by document within a file (a
// document's objects are the same *docObjects in both when its bytes did
// not change). It returns false when a document to adds is not valid.
func diffFiles(from, to map[string]*cached) (delta, bool) {
	var d delta
	for name, o := range from {
		n := to[name]
		if n != nil && n.file.Sum == o.file.Sum {
			continue
		}
		var units []*docObjects
		if n != nil {
			units = n.unitList()
		}
		if !d.diffUnits(o.unitList(), units) {
			return d, false
		}
	}
	for name, n := range to {
		if from[name] == nil && !d.diffUnits(nil, n.unitList()) {
			return d, false
		}
	}
	return d, true
}

// diffUnits adds to d the documents of from that to does not hold, and
// those of to that from does not hold, each counted as often as it occurs.
// It returns false when a document to adds is not valid.
func (d *delta) diffUnits(from, to []*docObjects) bool {
	count := make(map[*docObjects]int, len(from))
	for _, u := range from {
		count[u]++
	}
	for _, u := range to {
		if count[u] > 0 {
			count[u]--
			continue
		}
		if !u.valid {
			return false
		}
		d.addNamespaces = append(d.addNamespaces, u.namespaces...)
		d.addPods = append(d.addPods, u.pods...)
		d.addPolicies = append(d.addPolicies, u.policies...)
	}
	for _, u := range from {
		if count[u] > 0 {
			count[u]--
			d.delNamespaces = append(d.delNamespaces, u.namespaces...)
			d.delPods = append(d.delPods, u.pods...)
			d.delPolicies = append(d.delPolicies, u.policies...)
		}
	}
	return true
}

// unitList returns the documents of e; a seeded file (whose documents are
// not known) is one unit of all its objects.
func (e *cached) unitList() []*docObjects {
	if e.units == nil && e.docs == nil {
		f := &e.file
		e.units = []*docObjects{{namespaces: f.Namespaces, pods: f.Pods, policies: f.Policies, valid: e.valid}}
	}
	return e.units
}

// patchSorted returns sorted (ordered by compare, no key twice) without
// the elements whose keys del holds and with those of add, ordered by
// compare; sorted itself when both are empty, else a new slice (nil when
// empty). del and add are sorted in place. It returns false when a key of
// del is not in sorted, or one of add is in add twice or in sorted and
// not deleted: a snapshot with a key twice is not valid.
func patchSorted[T any](sorted, del, add []T, compare func(x, y *T) int) ([]T, bool) {
	if len(del) == 0 && len(add) == 0 {
		return sorted, true
	}
	order := func(x, y T) int { return compare(&x, &y) }
	slices.SortStableFunc(del, order)
	slices.SortStableFunc(add, order)
	search := func(x *T) (int, bool) {
		i := sort.Search(len(sorted), func(i int) bool { return compare(&sorted[i], x) >= 0 })
		return i, i < len(sorted) && compare(&sorted[i], x) == 0
	}
	delAt := make([]int, len(del))
	for k := range del {
		i, found := search(&del[k])
		if !found || (k > 0 && delAt[k-1] == i) {
			return nil, false
		}
		delAt[k] = i
	}
	out := make([]T, 0, len(sorted)-len(del)+len(add))
	next, dk := 0, 0 // next: the first element of sorted not copied yet
	for ak := range add {
		if ak > 0 && compare(&add[ak-1], &add[ak]) == 0 {
			return nil, false
		}
		i, found := search(&add[ak])
		for ; dk < len(del) && delAt[dk] < i; dk++ {
			out = append(out, sorted[next:delAt[dk]]...)
			next = delAt[dk] + 1
		}
		if found && !(dk < len(del) && delAt[dk] == i) {
			return nil, false
		}
		out = append(out, sorted[next:i]...)
		out = append(out, add[ak])
		next = i
		if found {
			next, dk = i+1, dk+1
		}
	}
	for ; dk < len(del); dk++ {
		out = append(out, sorted[next:delAt[dk]]...)
		next = delAt[dk] + 1
	}
	out = append(out, sorted[next:]...)
	if len(out) == 0 {
		return nil, true
	}
	return out, true
}

// withImplicit returns the snapshot's namespaces: declared (sorted by
// name) and, as Builder.Snapshot adds them, those that pods and policies
// name but none declares, sorted by name. It returns false when one of
// the latter is not valid.
func withImplicit(declared []policy.Namespace, pods []policy.Pod, policies []networkingv1.NetworkPolicy) ([]policy.Namespace, bool) {
	var implicit []policy.Namespace
	seen := map[string]bool{}
	note := func(name string) bool {
		if seen[name] {
			return true
		}
		seen[name] = true
		i := sort.Search(len(declared), func(i int) bool { return declared[i].Name >= name })
		if i < len(declared) && declared[i].Name == name {
			return true
		}
		ns := policy.Namespace{Name: name, Labels: policy.NamespaceLabels(name, nil)}
		implicit = append(implicit, ns)
		return len(policy.ValidateNamespace(&ns)) == 0
	}
	last := ""
	for i := range pods {
		if i > 0 && pods[i].Namespace == last {
			continue // sorted: a namespace's pods are together
		}
		last = pods[i].Namespace
		if !note(last) {
			return nil, false
		}
	}
	for i := range policies {
		if i > 0 && policies[i].Namespace == last {
			continue
		}
		last = policies[i].Namespace
		if !note(last) {
			return nil, false
		}
	}
	if len(implicit) == 0 {
		if len(declared) == 0 {
			return nil, true
		}
		return append([]policy.Namespace(nil), declared...), true
	}
	out := append(append([]policy.Namespace(nil), declared...), implicit...)
	slices.SortStableFunc(out, func(x, y policy.Namespace) int { return namespaceOrder(&x, &y) })
	return out, true
}

// namespaceOrder orders namespaces by name, as Builder.Snapshot does.
func namespaceOrder(x, y *policy.Namespace) int { return cmp.Compare(x.Name, y.Name) }

// policyOrder orders policies by namespace, then name, as Builder.Snapshot
// does.
func policyOrder(x, y *networkingv1.NetworkPolicy) int {
	return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
}
