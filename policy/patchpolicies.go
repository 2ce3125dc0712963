package policy

import (
	"reflect"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netpol/netpol/ipt"
)

// patchPolicies is Patch for a change of policies alone (pods, records
// and namespaces as they were) in which every changed, added or removed
// policy selects the same pods of this node, in the same directions, as
// before (none at all, often), and the namespaces that have policies are
// the same. The groups, dispatch, sets and index are then prev's; only the
// changed policies' own chains differ, and they are recompiled alone.
// Members of the sets they name do not depend on which policy names them
// (a set is named after what fills it), so a changed chain must name
// exactly the sets it named before: then no set appears or goes. ok false
// when the change is not of this kind; the caller patches the long way.
func patchPolicies(prev *Compiled, last, next *Snapshot) (*Compiled, bool) {
	if prev.podSets == nil {
		return nil, false
	}
	pairs, ok := changedPolicies(last, next)
	if !ok || !sameIsolated(last, next) {
		return nil, false
	}
	local := map[string][]*Pod{} // this node's pods, by namespace
	for i := range next.Pods {
		if p := &next.Pods[i]; next.IsLocal(p) {
			local[p.Namespace] = append(local[p.Namespace], p)
		}
	}
	c, err := newCompiler(&Snapshot{Version: next.Version, Node: next.Node, Namespaces: next.Namespaces, DropLog: next.DropLog}, nil)
	if err != nil {
		return nil, false
	}
	c.rulesOnly = true
	replace := map[string]ipt.Chain{} // by family prefix and name
	for _, pair := range pairs {
		was, wasIn, wasEg, ok1 := localSelection(pair[0], local)
		is, in, eg, ok2 := localSelection(pair[1], local)
		if !ok1 || !ok2 || !slices.Equal(was, is) || len(is) > 0 && (in != wasIn || eg != wasEg) {
			return nil, false
		}
		if len(is) == 0 {
			continue // compiled into nothing, before and now
		}
		cp := &compiledPolicy{key: policyKey(pair[1]), np: pair[1], dirs: [2]bool{in, eg}}
		if !c.policyChains(prev, cp, replace) {
			return nil, false
		}
	}
	out := *prev
	out.Rulesets = slices.Clone(prev.Rulesets)
	for i := range out.Rulesets {
		rs := &out.Rulesets[i]
		rs.Chains = slices.Clone(rs.Chains)
		for j := range rs.Chains {
			if ch, ok := replace[familyPrefix(rs.Family)+" "+rs.Chains[j].Name]; ok {
				rs.Chains[j] = ch
			}
		}
	}
	return &out, true
}

// policyChains compiles the chains of cp (c compiles rules only) into
// replace, by family prefix and name; false when prev lacks one of them,
// or had it name other sets.
func (c *compiler) policyChains(prev *Compiled, cp *compiledPolicy, replace map[string]ipt.Chain) bool {
	for _, f := range ipt.Families {
		c.sets, c.seen = map[string]*ipt.Set{}, map[string]map[string]bool{}
		old := prev.Ruleset(f)
		for d := Ingress; d <= Egress; d++ {
			if !cp.dirs[d] {
				continue
			}
			ch, err := c.policyRules(f, d, cp)
			if old == nil || err != nil {
				return false
			}
			was := findChain(old.Chains, ch.Name)
			if was == nil || !slices.Equal(setsNamed(was), setsNamed(&ch)) {
				return false
			}
			replace[familyPrefix(f)+" "+ch.Name] = ch
		}
	}
	return true
}

// changedPolicies returns the policies of next that are not in last as
// they are, each paired with last's of the same name (nil for one added),
// and those of last that next lacks (paired with nil); ok false when a
// policy is listed twice.
func changedPolicies(last, next *Snapshot) ([][2]*networkingv1.NetworkPolicy, bool) {
	var out [][2]*networkingv1.NetworkPolicy
	if len(last.Policies) == len(next.Policies) {
		aligned := true
		for i := range next.Policies {
			a, b := &last.Policies[i], &next.Policies[i]
			if a.Namespace != b.Namespace || a.Name != b.Name {
				aligned, out = false, nil
				break
			}
			if !reflect.DeepEqual(a.Spec, b.Spec) {
				out = append(out, [2]*networkingv1.NetworkPolicy{a, b})
			}
		}
		if aligned {
			return out, true
		}
	}
	before := make(map[string]*networkingv1.NetworkPolicy, len(last.Policies))
	for i := range last.Policies {
		before[policyKey(&last.Policies[i])] = &last.Policies[i]
	}
	if len(before) != len(last.Policies) {
		return nil, false
	}
	seen := make(map[string]bool, len(next.Policies))
	for i := range next.Policies {
		np := &next.Policies[i]
		key := policyKey(np)
		if seen[key] {
			return nil, false
		}
		seen[key] = true
		if was := before[key]; was == nil || !reflect.DeepEqual(was.Spec, np.Spec) {
			out = append(out, [2]*networkingv1.NetworkPolicy{was, np})
		}
	}
	for key, was := range before {
		if !seen[key] {
			out = append(out, [2]*networkingv1.NetworkPolicy{was, nil})
		}
	}
	return out, true
}

// sameIsolated reports whether last and next have policies in the same
// namespaces (Index.Isolated).
func sameIsolated(last, next *Snapshot) bool {
	of := func(s *Snapshot) map[string]bool {
		m := map[string]bool{}
		for i := range s.Policies {
			m[s.Policies[i].Namespace] = true
		}
		return m
	}
	a, b := of(last), of(next)
	if len(a) != len(b) {
		return false
	}
	for ns := range a {
		if !b[ns] {
			return false
		}
	}
	return true
}

// localSelection returns the keys of this node's pods (local, by
// namespace) that np selects, in order, and the directions it governs;
// none for a nil np. ok false when its selector does not parse.
func localSelection(np *networkingv1.NetworkPolicy, local map[string][]*Pod) (keys []string, in, eg, ok bool) {
	if np == nil {
		return nil, false, false, true
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return nil, false, false, false
	}
	in, eg = policyTypes(np)
	if !in && !eg {
		return nil, false, false, true
	}
	for _, p := range local[np.Namespace] {
		if sel.Matches(labels.Set(p.Labels)) {
			keys = append(keys, p.Key())
		}
	}
	return keys, in, eg, true
}

// setsNamed returns the sets the rules of ch match on, sorted, once each.
func setsNamed(ch *ipt.Chain) []string {
	var out []string
	for _, r := range ch.Rules {
		for _, m := range r.Matches {
			if sm, ok := m.(ipt.SetMatch); ok {
				out = append(out, sm.Set)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func findChain(chains []ipt.Chain, name string) *ipt.Chain {
	i, found := slices.BinarySearchFunc(chains, name, func(c ipt.Chain, n string) int { return strings.Compare(c.Name, n) })
	if !found {
		return nil
	}
	return &chains[i]
}
