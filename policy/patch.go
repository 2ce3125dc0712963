package policy

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/ipt"
)

// patchMaxPods is the most changed pods Patch handles; more is a resync.
const patchMaxPods = 256

// Patch returns Compile(next, atts), computed from prev = Compile(last,
// lastAtts) in time that grows with this node's pods and the policies, not
// with the pods of the cluster, or ok false when the change is not one it
// can patch (a namespace's labels changed, many pods changed, an address
// shared with a pod that did not change, a new peer set of a policy that
// did not change): the caller then compiles.
//
// It rests on what Compile's output depends on. The rules, the group and
// DENY sets and the index depend only on the policies, the namespaces and
// this node's pods and attachments; they come from a compile of the
// reduced snapshot that holds just those pods and the changed ones (a few
// milliseconds). A peer or named-port set member is an address of one pod
// (plus a port): the members of the addresses of changed pods and of
// attachments come from that reduced compile, every other member from prev.
// A peer or named-port set prev lacks is filled by a compile of the whole
// snapshot restricted to the changed policies. The result is the same value
// Compile returns (TestPatchIsCompile).
func Patch(prev *Compiled, last *Snapshot, lastAtts []Attachment, next *Snapshot, atts []Attachment) (_ *Compiled, ok bool, err error) {
	if prev == nil || last == nil || last.Node != next.Node || last.Audit != next.Audit ||
		!reflect.DeepEqual(last.DropLog, next.DropLog) || !sameNamespaces(last.Namespaces, next.Namespaces) {
		return nil, false, nil
	}
	changed, ok := changedPods(last, next)
	if !ok {
		return nil, false, nil
	}
	if out, ok, decline := patchShort(prev, last, lastAtts, next, atts, changed); ok || decline {
		return out, ok, nil
	}
	touched := changed.touched(last, next, lastAtts, atts)
	// A touched address held by a pod that did not change: its members
	// cannot be told apart from the changed pod's.
	if changed.sharesAddress(next, touched) {
		return nil, false, nil
	}
	reduced := &Snapshot{Version: next.Version, Node: next.Node, Namespaces: next.Namespaces, Policies: next.Policies}
	inNext := make([]bool, len(next.Pods))
	for _, i := range changed.next {
		inNext[i] = true
	}
	for i := range next.Pods {
		if p := &next.Pods[i]; next.IsLocal(p) || inNext[i] {
			reduced.Pods = append(reduced.Pods, *p)
		}
	}
	out, err := Compile(reduced, atts)
	if err != nil {
		return nil, false, err
	}
	// With the same policies and this node's pods and records, the rules
	// are prev's: keep its chains, so that a caller can tell them unchanged
	// without comparing them.
	sameRules := sameAttachmentsOrder(lastAtts, atts) && samePolicies(last, next) && !changed.changesLocal(last, next)
	var fill *Compiled // the new peer and named-port sets, whole
	for i := range out.Rulesets {
		rs := &out.Rulesets[i]
		old := prev.Ruleset(rs.Family)
		if old == nil {
			return nil, false, nil
		}
		if sameRules {
			rs.Chains, rs.Hooks = old.Chains, old.Hooks
		}
		for j := range rs.Sets {
			s := &rs.Sets[j]
			if was := findSet(old.Sets, s.Name); was != nil {
				s.Members = mergeMembers(was.Members, s.Members, touched)
				continue
			}
			if !podSet(rs.Family, s.Name) {
				continue
			}
			if fill == nil {
				if fill, err = compileChanged(last, next, atts); err != nil || fill == nil {
					return nil, false, err
				}
			}
			whole := findSet(fill.Ruleset(rs.Family).Sets, s.Name)
			if whole == nil {
				return nil, false, nil
			}
			s.Members = whole.Members
		}
	}
	return out, true, nil
}

// patchShort is Patch's two short ways: a change of policies alone that
// keeps this node's groups (patchPolicies), and a change of pods of other
// nodes alone (patchPeers). decline: a changed address is shared with a
// pod that did not change, which no way can patch.
func patchShort(prev *Compiled, last *Snapshot, lastAtts []Attachment, next *Snapshot, atts []Attachment,
	changed *podChanges) (out *Compiled, ok, decline bool) {
	if !sameAttachmentsOrder(lastAtts, atts) {
		return nil, false, false
	}
	if len(changed.refs) == 0 {
		if out, ok := patchPolicies(prev, last, next); ok {
			return out, true, false
		}
	}
	if !samePolicies(last, next) || changed.changesLocal(last, next) {
		return nil, false, false
	}
	if changed.sharesAddress(next, changed.touched(last, next)) {
		return nil, false, true
	}
	out, ok = patchPeers(prev, last, next, atts, changed)
	return out, ok, false
}

// sameAttachmentsOrder reports whether a and b are the same records in
// the same order.
func sameAttachmentsOrder(a, b []Attachment) bool {
	return slices.EqualFunc(a, b, func(x, y Attachment) bool {
		return x.ContainerID == y.ContainerID && x.IfName == y.IfName && x.Namespace == y.Namespace &&
			x.Name == y.Name && slices.Equal(x.IPs, y.IPs) && x.Created.Equal(y.Created)
	})
}

// samePolicies reports whether last and next have the same policies in the
// same order (the same slice elements, or equal ones).
func samePolicies(last, next *Snapshot) bool {
	if len(last.Policies) != len(next.Policies) {
		return false
	}
	if len(last.Policies) == 0 || &last.Policies[0] == &next.Policies[0] {
		return true
	}
	for i := range last.Policies {
		a, b := &last.Policies[i], &next.Policies[i]
		if a.Namespace != b.Namespace || a.Name != b.Name || !reflect.DeepEqual(a.Spec, b.Spec) {
			return false
		}
	}
	return true
}

// sameNamespaces reports whether a and b list the same namespaces with the
// same labels, in the same order.
func sameNamespaces(a, b []Namespace) bool {
	return slices.EqualFunc(a, b, func(x, y Namespace) bool {
		return x.Name == y.Name && x.Audit == y.Audit && maps.Equal(x.Labels, y.Labels)
	})
}

// podRef names a pod: a map key that costs no string to build.
type podRef struct{ namespace, name string }

func refOf(p *Pod) podRef { return podRef{p.Namespace, p.Name} }

// samePod reports whether a and b are the same to Compile. Labels that are
// the same map (a source that reuses what did not change) are not compared.
func samePod(a, b *Pod) bool {
	if a.Node != b.Node || !slices.Equal(a.IPs, b.IPs) || !slices.Equal(a.Ports, b.Ports) || len(a.Labels) != len(b.Labels) {
		return false
	}
	return reflect.ValueOf(a.Labels).UnsafePointer() == reflect.ValueOf(b.Labels).UnsafePointer() || maps.Equal(a.Labels, b.Labels)
}

// compileChanged compiles next with only the policies that differ from
// last's (added or changed): it yields the whole members of their peer and
// named-port sets. nil when no policy changed.
func compileChanged(last, next *Snapshot, atts []Attachment) (*Compiled, error) {
	before := make(map[string]*networkingv1.NetworkPolicy, len(last.Policies))
	for i := range last.Policies {
		before[policyKey(&last.Policies[i])] = &last.Policies[i]
	}
	var changed []networkingv1.NetworkPolicy
	for i := range next.Policies {
		np := &next.Policies[i]
		if was := before[policyKey(np)]; was == nil || !reflect.DeepEqual(was.Spec, np.Spec) {
			changed = append(changed, *np)
		}
	}
	if len(changed) == 0 {
		return nil, nil
	}
	s := *next
	s.Policies = changed
	return Compile(&s, atts)
}

// podSet reports whether a set of family f holds pod addresses of every
// node (a peer or named-port set), not only this node's.
func podSet(f ipt.Family, name string) bool {
	p := familyPrefix(f)
	return strings.HasPrefix(name, p+"-P-") || strings.HasPrefix(name, p+"-N-")
}

func findSet(sets []ipt.Set, name string) *ipt.Set {
	i, found := slices.BinarySearchFunc(sets, name, func(s ipt.Set, n string) int { return strings.Compare(s.Name, n) })
	if !found {
		return nil
	}
	return &sets[i]
}

// mergeMembers returns, sorted by entry, the members of old whose address
// is not touched and the members of fresh whose address is: old itself
// when that is what it holds. old is sorted by entry, so the members of one
// address are found by binary search (they sort together: an address is
// followed by nothing or by ",", which sorts before any character of an
// address or prefix), in time that grows with the touched addresses, not
// with old.
func mergeMembers(old, fresh []ipt.Member, touched map[string]bool) []ipt.Member {
	var add []ipt.Member
	for _, m := range fresh {
		if touched[memberAddr(m)] {
			add = append(add, m)
		}
	}
	drop := map[int]bool{}
	for a := range touched {
		i, _ := slices.BinarySearchFunc(old, a, func(m ipt.Member, a string) int { return strings.Compare(m.Entry, a) })
		for ; i < len(old) && memberAddr(old[i]) == a; i++ {
			drop[i] = true
		}
	}
	switch {
	case len(old)-len(drop)+len(add) == 0:
		return nil // as an empty merge is
	case len(drop) == 0 && len(add) == 0:
		return old
	}
	out := make([]ipt.Member, 0, len(old)-len(drop)+len(add))
	j := 0
	for i := range old {
		if drop[i] {
			continue
		}
		for ; j < len(add) && add[j].Entry < old[i].Entry; j++ {
			out = append(out, add[j])
		}
		out = append(out, old[i])
	}
	return append(out, add[j:]...)
}

// memberAddr is the address a set member is of: its entry up to the first
// ",".
func memberAddr(m ipt.Member) string { a, _, _ := strings.Cut(m.Entry, ","); return a }
