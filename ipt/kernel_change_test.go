package ipt

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// changedRuleset is testRuleset changed every way ApplyChange handles: a
// member added and one dropped, a set created and one dropped, a chain
// rewritten, one added and one dropped.
func changedRuleset() (prev, next *Ruleset) {
	prev = testRuleset()
	prev.Chains = append(prev.Chains, Chain{Name: "NETPOL-OLD", Rules: []Rule{{Verdict: Jump("RETURN")}}})
	prev.Sets = append(prev.Sets, Set{Name: "NETPOL4-ZOLD", Type: HashIP, Family: IPv4, Members: []Member{{Entry: "10.1.1.1"}}})
	next = testRuleset()
	next.Chains[0].Rules[2] = Rule{Matches: []Match{SetMatch{Set: "NETPOL4-NEW", Dir: Dst}}, Verdict: Goto("NETPOL-NEW")}
	next.Chains = append(next.Chains, Chain{Name: "NETPOL-NEW", Rules: []Rule{{Verdict: Jump("DROP")}}})
	next.Sets[0].Members = []Member{{Entry: "10.0.0.2"}, {Entry: "10.0.0.3"}}
	next.Sets = append([]Set{{Name: "NETPOL4-NEW", Type: HashNet, Family: IPv4,
		Members: []Member{{Entry: "10.2.0.0/16"}, {Entry: "10.2.3.0/24", NoMatch: true}}}}, next.Sets...)
	return prev, next
}

// TestKernelApplyChangeIsApply: ApplyChange from prev to next leaves the
// kernel exactly as a fresh Apply of next does in another namespace
// (iptables-save and ipset save of both compared), and a second change
// back to prev works from the memory the first one left.
func TestKernelApplyChangeIsApply(t *testing.T) {
	ctx := context.Background()
	prev, next := changedRuleset()
	fast, full := newTestNS(t), newTestNS(t)
	rf, rw := fast.runner(ModeNFT), full.runner(ModeNFT)
	if err := rf.Apply(ctx, []Ruleset{*prev}); err != nil {
		t.Fatal(err)
	}
	if err := rf.ApplyChange(ctx, []Ruleset{*prev}, []Ruleset{*next}); err != nil {
		t.Fatal(err)
	}
	if err := rw.Apply(ctx, []Ruleset{*next}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kernelLines(full.must("iptables-save", "-t", "filter")),
		kernelLines(fast.must("iptables-save", "-t", "filter"))); diff != "" {
		t.Errorf("iptables-save after ApplyChange (-fresh Apply +ApplyChange):\n%s", diff)
	}
	if diff := cmp.Diff(kernelLines(full.must("ipset", "save")), kernelLines(fast.must("ipset", "save"))); diff != "" {
		t.Errorf("ipset save after ApplyChange (-fresh Apply +ApplyChange):\n%s", diff)
	}
	if err := rf.ApplyChange(ctx, []Ruleset{*next}, []Ruleset{*prev}); err != nil {
		t.Fatal(err)
	}
	if d, err := rf.Diff(ctx, prev); err != nil || len(d) != 0 {
		t.Errorf("Diff after changing back = %q, %v", d, err)
	}
	if names := fast.setNames(); strings.Contains(strings.Join(names, " "), "NETPOL4-NEW") {
		t.Errorf("the dropped set is still there: %v", names)
	}
}

// TestKernelApplyChangeFailureIsOld: a change whose transaction the kernel
// refuses (a rule naming a set that does not exist) leaves the rules and the
// sets as they were (the member it added is gone again), and the Runner
// without memory: ApplyChange then refuses, and Apply rewrites.
func TestKernelApplyChangeFailureIsOld(t *testing.T) {
	ctx := context.Background()
	ns := newTestNS(t)
	r := ns.runner(ModeNFT)
	prev := testRuleset()
	if err := r.Apply(ctx, []Ruleset{*prev}); err != nil {
		t.Fatal(err)
	}
	bad := testRuleset()
	bad.Sets[0].Members = append(bad.Sets[0].Members, Member{Entry: "10.0.0.9"})
	bad.Chains[1].Rules = []Rule{{Matches: []Match{SetMatch{Set: "NETPOL4-MISSING", Dir: Src}}, Verdict: Jump("DROP")}}
	if err := r.ApplyChange(ctx, []Ruleset{*prev}, []Ruleset{*bad}); err == nil {
		t.Fatal("ApplyChange with a rule on a missing set succeeded")
	}
	if d, err := r.Diff(ctx, prev); err != nil || len(d) != 0 {
		t.Errorf("Diff after the failed change = %q, %v (want the old state)", d, err)
	}
	if err := r.ApplyChange(ctx, []Ruleset{*prev}, []Ruleset{*prev}); !errors.Is(err, ErrNoChange) {
		t.Errorf("ApplyChange after a failure = %v, want ErrNoChange", err)
	}
}

// kernelLines is save output without what differs between two namespaces
// holding the same state (comments, counters, a set's random initval),
// sorted.
func kernelLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, ":") {
			l = strings.Fields(l)[0]
		}
		if before, _, found := strings.Cut(l, " initval "); found {
			l = before // random per set
		}
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}
