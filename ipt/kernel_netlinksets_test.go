package ipt

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// netlinkSetRulesets are testRuleset and testRuleset6 with a set of every
// type Apply grows: hash:ip (NETPOL4-PEERS), hash:net with a nomatch member
// (NETPOL4-NETS, NETPOL6-PEERS) and hash:ip,port (NETPOL4-PORTS).
func netlinkSetRulesets() []Ruleset {
	v4, v6 := testRuleset(), testRuleset6()
	v4.Chains[1].Rules = append([]Rule{
		{Matches: []Match{SetMatch{Set: "NETPOL4-NETS", Dir: Dst}}, Verdict: Jump("ACCEPT")},
		{Matches: []Match{SetMatch{Set: "NETPOL4-PORTS", Dir: DstDst}}, Verdict: Jump("ACCEPT")},
	}, v4.Chains[1].Rules...)
	v4.Sets = append(v4.Sets,
		Set{Name: "NETPOL4-NETS", Type: HashNet, Family: IPv4, Members: []Member{
			{Entry: "10.1.0.0/16"}, {Entry: "10.1.2.0/24", NoMatch: true}, {Entry: "10.3.0.0/16"}}},
		Set{Name: "NETPOL4-PORTS", Type: HashIPPort, Family: IPv4, Members: []Member{
			{Entry: "10.0.0.1,tcp:80"}, {Entry: "10.0.0.2,udp:53"}}})
	return []Ruleset{*v4, *v6}
}

// findSet returns the set named name in rulesets, to change its members.
func findSet(t *testing.T, rulesets []Ruleset, name string) *Set {
	t.Helper()
	for i := range rulesets {
		for j := range rulesets[i].Sets {
			if rulesets[i].Sets[j].Name == name {
				return &rulesets[i].Sets[j]
			}
		}
	}
	t.Fatalf("no set %s", name)
	return nil
}

// cloneRulesets copies rulesets deeply enough to change set members.
func cloneRulesets(rulesets []Ruleset) []Ruleset {
	out := slices.Clone(rulesets)
	for i := range out {
		out[i].Sets = slices.Clone(out[i].Sets)
		for j := range out[i].Sets {
			out[i].Sets[j].Members = slices.Clone(out[i].Sets[j].Members)
		}
	}
	return out
}

// ipsetRuns starts counting the `ipset` commands r runs, by first argument.
func ipsetRuns(r *Runner) func() []string {
	var mu sync.Mutex
	var runs []string
	r.Trace = func(command string, _ time.Duration) {
		if strings.HasPrefix(command, "ipset") {
			mu.Lock()
			runs = append(runs, command)
			mu.Unlock()
		}
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(runs)
	}
}

// checkExact fails t unless the kernel holds exactly the sets of rulesets
// (`ipset save` of each compared with its members in memberKey form), and
// no temporary set is left.
func checkExact(t *testing.T, ns *testNS, rulesets []Ruleset) {
	t.Helper()
	saved := parseIPSetSave(ns.must("ipset", "save"))
	for _, rs := range rulesets {
		for _, s := range rs.Sets {
			want := memberKeys(s)
			got := saved[s.Name]
			if got == nil {
				t.Errorf("set %s is missing", s.Name)
				continue
			}
			if diff := cmp.Diff(want, got.Members); diff != "" {
				t.Errorf("set %s (-want +ipset save):\n%s", s.Name, diff)
			}
		}
	}
	for name := range saved {
		if strings.HasPrefix(name, tempPrefix) {
			t.Errorf("temporary set %s is left", name)
		}
	}
}

// applyChanged applies first, then next from inside ns (the agent's case:
// NetNS empty), and returns the ipset commands the second Apply ran.
func applyChanged(t *testing.T, first, next []Ruleset) (*testNS, []string) {
	t.Helper()
	ns := newTestNS(t)
	enterNS(t, ns)
	r, ctx := &Runner{Mode: ModeNFT, Timeout: time.Minute}, context.Background()
	if err := r.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	runs := ipsetRuns(r)
	if err := r.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	checkExact(t, ns, next)
	for _, rs := range next {
		if d, err := r.Diff(ctx, &rs); err != nil || len(d) != 0 {
			t.Errorf("Diff of %s after the second Apply = %q, %v", rs.Family, d, err)
		}
	}
	return ns, runs()
}

// TestKernelApplySmallSetDiffOverNetlink: after a first Apply (memory
// valid), an Apply that adds and drops a few members of sets of every type
// and both families (none of them nomatch) leaves each set exactly its
// members and runs no `ipset` process at all: no grow or shrink restore,
// no temporary to destroy. When the deletes start, a set holds its old and
// its new members (grow, then shrink).
func TestKernelApplySmallSetDiffOverNetlink(t *testing.T) {
	real := netlinkSetEntries
	var mu sync.Mutex
	var atShrink map[string]bool
	netlinkSetEntries = func(ctx context.Context, add bool, entries []Entry) bool {
		v4 := strings.HasPrefix(entries[0].Set, "NETPOL4-")
		if got, ok := netlinkMembers(Set{Name: "NETPOL4-PEERS", Type: HashIP, Family: IPv4}); ok && !add && v4 {
			mu.Lock()
			atShrink = got.Members
			mu.Unlock()
		}
		return real(ctx, add, entries)
	}
	t.Cleanup(func() { netlinkSetEntries = real })
	first := netlinkSetRulesets()
	next := cloneRulesets(first)
	peers := findSet(t, next, "NETPOL4-PEERS")
	peers.Members = []Member{{Entry: "10.0.0.2"}, {Entry: "10.0.0.3"}}
	nets := findSet(t, next, "NETPOL4-NETS")
	nets.Members = []Member{{Entry: "10.1.0.0/16"}, {Entry: "10.1.2.0/24", NoMatch: true}, {Entry: "10.4.0.0/15"}, {Entry: "10.9.9.9/32"}}
	ports := findSet(t, next, "NETPOL4-PORTS")
	ports.Members = []Member{{Entry: "10.0.0.1,tcp:80"}, {Entry: "10.0.0.5,sctp:9"}}
	six := findSet(t, next, "NETPOL6-PEERS")
	six.Members = []Member{{Entry: "fd00::/64"}, {Entry: "fd00::8/125", NoMatch: true}, {Entry: "fd02::1"}}
	_, runs := applyChanged(t, first, next)
	if len(runs) != 0 {
		t.Errorf("the second Apply ran ipset %d times: %q; want none (netlink)", len(runs), runs)
	}
	want := map[string]bool{"10.0.0.1": true, "10.0.0.2": true, "10.0.0.3": true}
	if diff := cmp.Diff(want, atShrink); diff != "" {
		t.Errorf("NETPOL4-PEERS when the deletes started (-old and new +kernel):\n%s", diff)
	}
}

// TestKernelApplyNomatchDiffUsesRestore: a change that adds, drops or flips
// a nomatch member goes through the restore (netlinkRestore here, whose
// batches carry the flag; AddEntries' requests cannot), and the set still
// ends exactly its members.
func TestKernelApplyNomatchDiffUsesRestore(t *testing.T) {
	for name, members := range map[string][]Member{
		"added":   {{Entry: "10.1.0.0/16"}, {Entry: "10.1.2.0/24", NoMatch: true}, {Entry: "10.1.3.0/24", NoMatch: true}, {Entry: "10.3.0.0/16"}},
		"dropped": {{Entry: "10.1.0.0/16"}, {Entry: "10.3.0.0/16"}},
		"flipped": {{Entry: "10.1.0.0/16"}, {Entry: "10.1.2.0/24"}, {Entry: "10.3.0.0/16"}},
	} {
		t.Run(name, func(t *testing.T) {
			first := netlinkSetRulesets()
			next := cloneRulesets(first)
			findSet(t, next, "NETPOL4-NETS").Members = members
			_, runs := applyChanged(t, first, next)
			if !slices.Contains(runs, "ipset netlink") {
				t.Errorf("the second Apply ran %q, want a restore (over netlink, in the namespace)", runs)
			}
		})
	}
}

// TestKernelApplyLargeSetDiffUsesRestore: a change of more than
// netlinkDiffMax members goes through the restore (netlinkRestore here),
// and ends exact.
func TestKernelApplyLargeSetDiffUsesRestore(t *testing.T) {
	first := netlinkSetRulesets()
	next := cloneRulesets(first)
	peers := findSet(t, next, "NETPOL4-PEERS")
	for i := 0; i <= netlinkDiffMax; i++ {
		peers.Members = append(peers.Members, Member{Entry: fmt.Sprintf("10.5.%d.%d", i>>8, i&255)})
	}
	_, runs := applyChanged(t, first, next)
	if !slices.Contains(runs, "ipset netlink") {
		t.Errorf("the second Apply ran %q, want a restore (over netlink, in the namespace)", runs)
	}
}

// TestKernelApplyNetlinkFailureFallsBack: when netlink gives up half-way
// (the first entry of each batch done, then a failure), the growth and the
// shrink each fall back to their restore: when the shrink starts, the set
// holds its old and its new members (the growth's restore completed the
// half-done add), and every set ends exactly its members with no temporary
// left.
func TestKernelApplyNetlinkFailureFallsBack(t *testing.T) {
	real := netlinkSetEntries
	var mu sync.Mutex
	var calls []bool
	var atShrink map[string]bool
	netlinkSetEntries = func(ctx context.Context, add bool, entries []Entry) bool {
		mu.Lock()
		calls = append(calls, add)
		if !add {
			if got, ok := netlinkMembers(Set{Name: "NETPOL4-PEERS", Type: HashIP, Family: IPv4}); ok {
				atShrink = got.Members
			}
		}
		mu.Unlock()
		real(ctx, add, entries[:1])
		return false
	}
	t.Cleanup(func() { netlinkSetEntries = real })
	first := testRuleset()
	next := testRuleset()
	next.Sets[0].Members = []Member{{Entry: "10.0.0.3"}, {Entry: "10.0.0.4"}}
	_, runs := applyChanged(t, []Ruleset{*first}, []Ruleset{*next})
	if diff := cmp.Diff([]bool{true, false}, calls); diff != "" {
		t.Errorf("netlink calls, add or not (-want +got):\n%s", diff)
	}
	want := map[string]bool{"10.0.0.1": true, "10.0.0.2": true, "10.0.0.3": true, "10.0.0.4": true}
	if diff := cmp.Diff(want, atShrink); diff != "" {
		t.Errorf("NETPOL4-PEERS when the shrink started (-old and new +kernel):\n%s", diff)
	}
	if n := strings.Count(strings.Join(runs, "\n"), "ipset netlink"); n != 3 {
		t.Errorf("the second Apply ran %q, want the grow and the shrink restores and the temporary's destroy", runs)
	}
}
