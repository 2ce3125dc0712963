package policy

import (
	"math/bits"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

// leafGroups is the most groups a leaf of the dispatch tree tries one by
// one; above it, the tree splits on one bit of the group's number.
const leafGroups = 2

// dispatcher builds the chains and sets that send a new connection's packet
// to the group chain of its pod in one direction, in O(log groups) rules
// whatever the number of groups, with no rule per pod: a pod created or
// deleted changes set members only.
//
// The groups of the direction are numbered 0..n-1 in their sorted order. A
// local pod of group i is a member of:
//
//   - the direction's isolated set (isoSet): every pod some group holds;
//   - the bit set of level k (bitSet) for each bit k of i that the tree
//     tests;
//   - its group set.
//
// NETPOL-INGRESS (EGRESS) goes to the root of the tree for a packet whose
// destination (source) is in the isolated set; any other packet leaves it
// unrestricted. An inner node of the tree tests one bit set and goes to the
// chain of its upper half; its lower half's rules follow in its own chain
// (so a chain is a run of bit tests, high to low, ending in a leaf); a leaf
// tries the group sets of its at most leafGroups groups and goes to the
// group chain of the one that holds the pod. A packet costs one rule and
// one set lookup per level, about log2(n), plus the leaf's.
//
// The tree only finds which group-set rule to try: the rule that reaches a
// group chain is the same set match the linear scan would use. So when the
// bit sets disagree with the group sets (while a sync moves a pod from one
// group to another, or after an ADD that was cut short), the leaf misses
// and goes to the scan chain (scanChain): one rule per group, in order, as
// the dispatch was before there was a tree. A packet never reaches a group
// chain whose set lacks its pod, and never leaves unrestricted while its
// pod is in the isolated set: one found in no group set is dropped at the
// end of the scan (ReasonNoGroup). The isolated set is grown before, and
// shrunk after, the rules that use it, like every set; an ADD adds a pod's
// isolated entries before its others (node.Index.Entries).
type dispatcher struct {
	c      *compiler
	f      ipt.Family
	d      Direction
	groups []*group
	chains []ipt.Chain
	levels map[int]bool // levels the tree tests a bit of
}

// dispatch returns the direction's dispatch chain (node.DispatchHead: it
// starts with the fail-closed DENY rule, which goes to the chain that logs
// and drops), that chain, the tree and scan chains, and fills the
// isolated, bit and group sets with the groups' pods.
func (c *compiler) dispatch(f ipt.Family, d Direction, groups []*group) []ipt.Chain {
	dir := dispatchDir(d)
	head := node.DispatchHead(f, d, c.dropLog)
	top, unknown := head[0], head[1]
	if len(groups) == 0 {
		return []ipt.Chain{top, unknown}
	}
	t := &dispatcher{c: c, f: f, d: d, groups: groups, levels: map[int]bool{}}
	scan := ipt.Chain{Name: scanChain(d)}
	for _, g := range groups {
		scan.Rules = append(scan.Rules, t.groupRule(g))
	}
	scan.Rules = append(scan.Rules, c.dropRules(nil,
		DropCause{Direction: d, Verdict: VerdictDrop, Reason: ReasonNoGroup},
		"isolated, but in no group set: fail closed")...)
	span := 1 << bits.Len(uint(len(groups)-1)) // the power of two >= n
	root := t.node(0, span)
	iso := c.set(f, isoSet(f, d), ipt.HashIP, d.String()+": pods some policy isolates")
	top.Rules = append(top.Rules, ipt.Rule{
		Matches: []ipt.Match{ipt.SetMatch{Set: iso.Name, Dir: dir}},
		Comment: "isolated: find the pod's group",
		Verdict: ipt.Goto(ipt.Target(root)),
	})
	for i, g := range groups {
		for _, p := range g.pods {
			c.addPod(iso, f, p, "")
			for level := range t.levels {
				if i&(1<<level) != 0 {
					c.addPod(t.bitSet(level), f, p, "")
				}
			}
		}
	}
	for level := range t.levels {
		t.bitSet(level) // a tested level with no pod of its half still exists
	}
	return append(t.chains, top, unknown, scan)
}

// groupRule is the rule that sends a packet whose pod is in group g's set
// to g's chain; it creates and fills the group set.
func (t *dispatcher) groupRule(g *group) ipt.Rule {
	gs := t.c.set(t.f, groupSet(t.f, g.dir, g.key), ipt.HashIP, g.key)
	for _, p := range g.pods {
		t.c.addPod(gs, t.f, p, "")
	}
	return ipt.Rule{
		Matches: []ipt.Match{ipt.SetMatch{Set: gs.Name, Dir: dispatchDir(g.dir)}},
		Comment: g.key,
		Verdict: ipt.Goto(ipt.Target(groupChain(g.dir, g.key))),
	}
}

// node returns the chain that dispatches the groups numbered lo..lo+span-1
// (span a power of two; numbers past the last group do not exist).
func (t *dispatcher) node(lo, span int) string {
	ch := ipt.Chain{Name: treeChain(t.d, lo, span), Rules: t.nodeRules(lo, span)}
	t.chains = append(t.chains, ch)
	return ch.Name
}

// nodeRules returns the rules that dispatch the groups lo..lo+span-1. An
// inner node tests its bit set and goes to the chain of its upper half;
// its lower half's rules follow in the same chain, with no rule to go to
// them: a packet pays one rule and one lookup a level whichever half it
// takes, and the leaf's rules end the chain.
func (t *dispatcher) nodeRules(lo, span int) []ipt.Rule {
	n := min(lo+span, len(t.groups)) - lo
	if n <= leafGroups {
		var rules []ipt.Rule
		for _, g := range t.groups[lo : lo+n] {
			rules = append(rules, t.groupRule(g))
		}
		return append(rules, ipt.Rule{
			Comment: "the bit sets disagree with the group sets: scan",
			Verdict: ipt.Goto(ipt.Target(scanChain(t.d))),
		})
	}
	half := span / 2
	if lo+half >= len(t.groups) {
		return t.nodeRules(lo, half) // no group has this bit set
	}
	level := bits.Len(uint(half)) - 1
	t.levels[level] = true
	upper := ipt.Rule{
		Matches: []ipt.Match{ipt.SetMatch{Set: t.bitSet(level).Name, Dir: dispatchDir(t.d)}},
		Verdict: ipt.Goto(ipt.Target(t.node(lo+half, half))),
	}
	return append([]ipt.Rule{upper}, t.nodeRules(lo, half)...)
}

// bitSet returns the set of the pods whose group number has bit level set.
func (t *dispatcher) bitSet(level int) *ipt.Set {
	return t.c.set(t.f, bitSet(t.f, t.d, level), ipt.HashIP, t.d.String()+": pods whose group number has this bit set")
}
