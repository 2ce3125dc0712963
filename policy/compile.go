package policy

import (
	"fmt"
	"sort"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

// Compiled is the desired state of one node: a Ruleset per family and the
// Index the plugin reads on ADD and DEL.
type Compiled struct {
	Rulesets []ipt.Ruleset // one per ipt.Families, in that order
	Index    Index
	// Groups names the policies behind each group hash that a drop's
	// NFLOG prefix can carry.
	Groups GroupPolicies

	// podSets says how each peer and named-port set (by name) is filled:
	// what Patch needs to recompute one pod's members of them without a
	// compile. It is derived from the policies alone.
	podSets map[string]podSetSource
}

// Ruleset returns the ruleset of family f.
func (c *Compiled) Ruleset(f ipt.Family) *ipt.Ruleset {
	for i := range c.Rulesets {
		if c.Rulesets[i].Family == f {
			return &c.Rulesets[i]
		}
	}
	return nil
}

// Compile turns a snapshot and the attachments CNI ADD recorded on this node
// into the node's desired rulesets and index. An address recorded for more
// than one attachment belongs to the newest (OwnAddresses). It is pure and deterministic:
// the same input gives byte-identical output. The snapshot must have passed
// ValidateSnapshot; an invalid selector is still reported as an error.
//
// Layout (per family, filter table):
//
//	FORWARD -> NETPOL-FORWARD: established/related RETURN, source =
//	           destination (a pod to itself, hairpin) RETURN, then
//	           physdev-is-bridged -g NETPOL-BRIDGED, else -g NETPOL-ROUTED
//	NETPOL-BRIDGED, NETPOL-ROUTED: -j NETPOL-EGRESS, -j NETPOL-INGRESS
//	NETPOL-INGRESS/EGRESS: DENY set -> NETPOL-DENY-I/E (log, DROP); the destination (source) pod
//	           isolated -> -g the dispatch tree, which finds its group chain
//	           in O(log groups) set lookups (see dispatcher)
//	group chain: set the pending mark, -j each policy chain while still
//	           pending, allowed (mark clear) -> RETURN, else log (NFLOG,
//	           rate-limited) and DROP
//	policy chain: one rule per allowed (peer, ports) -> -g NETPOL-ALLOW,
//	           which clears the pending mark
//
// A pod created or deleted changes set members only; rules change with
// policies and with the distinct policy combinations that select local pods.
func Compile(s *Snapshot, atts []Attachment) (*Compiled, error) {
	c, err := newCompiler(s, atts)
	if err != nil {
		return nil, err
	}
	return c.compile()
}

// CompileUnknown is the desired state of a node whose agent has never
// synced (node.Skeleton), with no index: the plugin must keep failing
// closed.
func CompileUnknown(atts []Attachment, dl DropLog) (*Compiled, error) {
	rulesets, err := node.Skeleton(atts, dl)
	if err != nil {
		return nil, err
	}
	return &Compiled{Rulesets: rulesets, Groups: GroupPolicies{}}, nil
}

func (c *compiler) compile() (*Compiled, error) {
	out := &Compiled{Index: c.index(), Groups: c.groupPolicies(), podSets: c.podSets}
	for _, f := range ipt.Families {
		rs, err := c.family(f)
		if err != nil {
			return nil, err
		}
		out.Rulesets = append(out.Rulesets, *rs)
	}
	out.Index.Pods = c.memberships()
	return out, nil
}

// compiledPolicy is a policy that selects at least one pod of this node.
type compiledPolicy struct {
	key  string // namespace/name
	np   *networkingv1.NetworkPolicy
	dirs [2]bool // which of Ingress, Egress it governs
}

// group is a set of local pods selected by the same policies in one direction.
type group struct {
	dir      Direction
	key      string // the policies' keys, comma-joined
	policies []*compiledPolicy
	pods     []*Pod
}

type compiler struct {
	snap     *Snapshot
	w        *world
	local    []*Pod // this node's pods, sorted by key
	unknown  []Attachment
	isolated []string
	policies []*compiledPolicy
	groups   []*group // sorted by direction, then key

	// per family, reset by family():
	sets map[string]*ipt.Set
	seen map[string]map[string]bool // set name -> entries already added

	member    map[string]map[Membership]bool // pod key -> memberships, all families
	peerCache map[string][]*Pod              // peer key -> the pods it selects
	families  map[string]ipt.Family          // address -> its family
	podSets   map[string]podSetSource        // peer and named-port set -> how it is filled
	dropLog   DropLog

	// rulesOnly leaves the peer and named-port sets empty: for CompilePod,
	// whose caller compares rules only.
	rulesOnly bool
}

func newCompiler(s *Snapshot, atts []Attachment) (*compiler, error) {
	pods, local, unknown := mergePods(s, OwnAddresses(atts))
	c := &compiler{snap: s, w: newWorld(s, pods), local: local, member: map[string]map[Membership]bool{},
		peerCache: map[string][]*Pod{}, families: map[string]ipt.Family{}, podSets: map[string]podSetSource{}, dropLog: s.dropLog()}
	if err := c.dropLog.Validate(); err != nil {
		return nil, err
	}
	for _, p := range pods {
		for _, ip := range p.IPs {
			if f, ok := ipFamily(ip); ok {
				c.families[ip] = f
			}
		}
	}
	isolated := map[string]bool{}
	for i := range s.Policies {
		isolated[s.Policies[i].Namespace] = true
	}
	for ns := range isolated {
		c.isolated = append(c.isolated, ns)
	}
	sort.Strings(c.isolated)
	for _, a := range unknown {
		if isolated[a.Namespace] {
			c.unknown = append(c.unknown, a)
		}
	}
	if err := c.selectPolicies(s.Policies); err != nil {
		return nil, err
	}
	return c, nil
}

// mergePods returns every pod with addresses resolved: a local pod's IPs are
// exactly those CNI ADD recorded for it (none before ADD and after DEL, even
// while the API still shows its status IPs: they may be handed to another
// pod), a remote pod's are its status IPs. Attachments whose pod the
// snapshot does not place on this node are returned as unknown.
func mergePods(s *Snapshot, atts []Attachment) (all, local []*Pod, unknown []Attachment) {
	recorded := map[string][]string{}
	for _, a := range atts {
		recorded[a.PodKey()] = append(recorded[a.PodKey()], a.IPs...)
	}
	localKeys := map[string]bool{}
	for i := range s.Pods {
		p := s.Pods[i] // copy: the snapshot is not modified
		if s.IsLocal(&p) {
			p.IPs = uniqueSorted(recorded[p.Key()])
			local = append(local, &p)
			localKeys[p.Key()] = true
		} else {
			p.IPs = canonicalIPs(p.IPs) // so named-port entries read as the kernel prints them
		}
		all = append(all, &p)
	}
	for _, a := range atts {
		if !localKeys[a.PodKey()] {
			unknown = append(unknown, a)
		}
	}
	sort.Slice(local, func(i, j int) bool { return local[i].Key() < local[j].Key() })
	sort.Slice(unknown, func(i, j int) bool { return unknown[i].ContainerID < unknown[j].ContainerID })
	return all, local, unknown
}

// policyTypes applies the API's defaulting: "If this field is not specified,
// it will default based on the existence of ingress or egress rules; policies
// that contain an egress section are assumed to affect egress, and all
// policies (whether or not they contain an ingress section) are assumed to
// affect ingress."
func policyTypes(np *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(np.Spec.PolicyTypes) == 0 {
		return true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

// selectPolicies finds the policies that select local pods and groups the
// local pods by the exact list of policies selecting them, per direction.
func (c *compiler) selectPolicies(nps []networkingv1.NetworkPolicy) error {
	sorted := make([]*networkingv1.NetworkPolicy, len(nps))
	for i := range nps {
		sorted[i] = &nps[i]
	}
	sort.Slice(sorted, func(i, j int) bool {
		return policyKey(sorted[i]) < policyKey(sorted[j])
	})
	perPod := map[*Pod]*[2][]*compiledPolicy{}
	for _, np := range sorted {
		selected, err := c.w.selectedPods(np.Namespace, &np.Spec.PodSelector)
		if err != nil {
			return fmt.Errorf("networkpolicy %s: spec.podSelector: %w", policyKey(np), err)
		}
		in, eg := policyTypes(np)
		cp := &compiledPolicy{key: policyKey(np), np: np, dirs: [2]bool{in, eg}}
		used := false
		for _, p := range selected {
			if !c.snap.IsLocal(p) {
				continue
			}
			if perPod[p] == nil {
				perPod[p] = &[2][]*compiledPolicy{}
			}
			for d := Ingress; d <= Egress; d++ {
				if cp.dirs[d] {
					perPod[p][d] = append(perPod[p][d], cp)
					used = true
				}
			}
		}
		if used {
			c.policies = append(c.policies, cp)
		}
	}
	c.buildGroups(perPod)
	return nil
}

func (c *compiler) buildGroups(perPod map[*Pod]*[2][]*compiledPolicy) {
	byKey := map[string]*group{}
	for _, p := range c.local {
		sel := perPod[p]
		if sel == nil {
			continue
		}
		for d := Ingress; d <= Egress; d++ {
			if len(sel[d]) == 0 {
				continue
			}
			keys := make([]string, len(sel[d]))
			for i, cp := range sel[d] {
				keys[i] = cp.key
			}
			gk := d.String() + ":" + strings.Join(keys, ",")
			g := byKey[gk]
			if g == nil {
				g = &group{dir: d, key: gk, policies: sel[d]}
				byKey[gk] = g
				c.groups = append(c.groups, g)
			}
			g.pods = append(g.pods, p)
		}
	}
	sort.Slice(c.groups, func(i, j int) bool { return c.groups[i].key < c.groups[j].key })
}

func policyKey(np *networkingv1.NetworkPolicy) string { return np.Namespace + "/" + np.Name }

// index is the plugin's view, without memberships (filled per family).
func (c *compiler) index() Index {
	return Index{Version: SnapshotVersion, Isolated: c.isolated}
}

// memberships returns, per local pod, the sorted set memberships recorded
// while the families were compiled.
func (c *compiler) memberships() map[string][]Membership {
	out := map[string][]Membership{}
	for _, p := range c.local {
		ms := make([]Membership, 0, len(c.member[p.Key()]))
		for m := range c.member[p.Key()] {
			ms = append(ms, m)
		}
		sort.Slice(ms, func(i, j int) bool {
			a, b := ms[i], ms[j]
			if a.Family != b.Family {
				return a.Family < b.Family
			}
			if a.Set != b.Set {
				return a.Set < b.Set
			}
			return a.Suffix < b.Suffix
		})
		out[p.Key()] = ms
	}
	return out
}

func ipFamily(s string) (ipt.Family, bool) { return node.AddressFamily(s) }

func canonicalIPs(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = canonicalIP(s)
	}
	return out
}

func uniqueSorted(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
