package ipt

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netns"
)

// rollbackRulesets are the IPv4 and IPv6 rulesets of the rollback tests:
// testRuleset's hash:ip set NETPOL4-PEERS, plus a hash:ip,port set and a
// hash:net set with a nomatch exception.
func rollbackRulesets() (*Ruleset, *Ruleset) {
	rs := testRuleset()
	rs.Sets = append(rs.Sets,
		Set{Name: "NETPOL4-NP", Type: HashIPPort, Family: IPv4, Members: []Member{{Entry: "10.0.0.1,8080"}}},
		Set{Name: "NETPOL4-NET", Type: HashNet, Family: IPv4, Members: []Member{
			{Entry: "10.1.0.0/16"}, {Entry: "10.1.2.0/24", NoMatch: true}}})
	return rs, testRuleset6()
}

// TestKernelFailedSyncKeepsPluginMembers: a member the plugin added to a set
// between two syncs (ADD puts a new pod's address into its group sets and
// the DENY set, behind the Runner's back) stays in its set when the next
// sync's desired state has it too and that family's transaction fails: the
// undo of the growth deletes only what the growth added. Otherwise a pod
// would leave the DENY set (no longer isolated) on every failed retry.
func TestKernelFailedSyncKeepsPluginMembers(t *testing.T) {
	ns := newTestNS(t)
	testFailedSyncKeepsPluginMembers(t, ns, ns.runner(ModeNFT))
}

func testFailedSyncKeepsPluginMembers(t *testing.T, ns *testNS, r *Runner) {
	ctx := context.Background()
	old4, old6 := rollbackRulesets()
	if err := r.Apply(ctx, []Ruleset{*old4, *old6}); err != nil {
		t.Fatal(err)
	}
	// The plugin's ADD, in ipset's own syntax as the plugin writes it.
	ns.must("ipset", "add", "NETPOL4-PEERS", "10.0.0.9")
	ns.must("ipset", "add", "NETPOL4-NP", "10.0.0.9,8080")
	ns.must("ipset", "add", "NETPOL4-NET", "10.1.3.0/24", "nomatch")

	bad4, new6 := rollbackRulesets()
	bad4.Sets[0].Members = append(bad4.Sets[0].Members, Member{Entry: "10.0.0.9"}, Member{Entry: "10.0.0.3"})
	bad4.Sets[1].Members = append(bad4.Sets[1].Members, Member{Entry: "10.0.0.9,tcp:8080"}, Member{Entry: "10.0.0.3,8080"})
	bad4.Sets[2].Members = append(bad4.Sets[2].Members, Member{Entry: "10.1.3.0/24", NoMatch: true}, Member{Entry: "10.2.0.0/16"})
	bad4.Chains[1].Rules = append(bad4.Chains[1].Rules, Rule{Verdict: Jump("NETPOL-NOPE")})
	new6.Sets[0].Members = append(new6.Sets[0].Members, Member{Entry: "fd02::1"})
	err := r.Apply(ctx, []Ruleset{*bad4, *new6})
	var re *RestoreError
	if !errors.As(err, &re) {
		t.Fatalf("Apply with a broken IPv4 rule = %v, want a *RestoreError", err)
	}
	if d, err := r.Diff(ctx, new6); err != nil || len(d) != 0 {
		t.Errorf("IPv6 is not entirely new: Diff = %q, %v", d, err)
	}
	for set, want := range map[string][]string{
		"NETPOL4-PEERS": {"10.0.0.1", "10.0.0.2", "10.0.0.9"},
		"NETPOL4-NP":    {"10.0.0.1,tcp:8080", "10.0.0.9,tcp:8080"},
		"NETPOL4-NET":   {"10.1.0.0/16", "10.1.2.0/24 nomatch", "10.1.3.0/24 nomatch"},
	} {
		got := parseIPSetSave(ns.must("ipset", "save", set))[set]
		if got == nil {
			t.Errorf("set %s is gone", set)
			continue
		}
		var members []string
		for m := range got.Members {
			members = append(members, m)
		}
		if !sameStrings(members, want) {
			t.Errorf("set %s after the failed sync = %q, want %q (the old members and the plugin's)", set, members, want)
		}
	}
}

func sameStrings(a, b []string) bool {
	seen := make(map[string]int)
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

// TestKernelFailedSyncKeepsPluginMembersNetlink is the same from inside the
// namespace (the agent's case): the sets are read over netlink.
func TestKernelFailedSyncKeepsPluginMembersNetlink(t *testing.T) {
	ns := newTestNS(t)
	enterNS(t, ns)
	testFailedSyncKeepsPluginMembers(t, ns, &Runner{Mode: ModeNFT, Timeout: time.Minute})
}

// enterNS moves the calling goroutine's thread into ns for the rest of the
// test. The thread is never unlocked: it ends with the test's goroutine
// instead of going back to the scheduler in the wrong namespace.
func enterNS(t testing.TB, ns *testNS) {
	t.Helper()
	runtime.LockOSThread()
	h, err := netns.GetFromName(ns.name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	if cur, err := netns.Get(); err != nil || !cur.Equal(h) {
		t.Fatalf("thread not in %s: %v", ns.name, err)
	}
}

// TestKernelNetlinkMembersMatchSave: a set read over netlink has exactly the
// members `ipset save` prints, in memberKey form, for every type and family
// Apply grows (nomatch flags, host routes, ports of each protocol).
func TestKernelNetlinkMembersMatchSave(t *testing.T) {
	ns := newTestNS(t)
	ns.mustIn(`create NETPOL4-A hash:ip family inet
add NETPOL4-A 10.0.0.1
add NETPOL4-A 10.0.0.255
create NETPOL6-A hash:ip family inet6
add NETPOL6-A fd00::1
add NETPOL6-A ::ffff:10.0.0.1
create NETPOL4-P hash:ip,port family inet
add NETPOL4-P 10.0.0.1,80
add NETPOL4-P 10.0.0.1,udp:53
add NETPOL4-P 10.0.0.2,sctp:9
create NETPOL6-P hash:ip,port family inet6
add NETPOL6-P fd00::1,tcp:65535
create NETPOL4-N hash:net family inet
add NETPOL4-N 10.1.0.0/16
add NETPOL4-N 10.1.2.0/24 nomatch
add NETPOL4-N 10.9.9.9/32
add NETPOL4-N 10.9.9.8
create NETPOL6-N hash:net family inet6
add NETPOL6-N fd00::/64
add NETPOL6-N fd00::8/125 nomatch
create NETPOL4-E hash:ip family inet
`, "ipset", "restore")
	var big strings.Builder // a dump of many messages
	big.WriteString("create NETPOL4-BIG hash:ip family inet maxelem 65536\n")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&big, "add NETPOL4-BIG 10.2.%d.%d\n", i>>8, i&255)
	}
	ns.mustIn(big.String(), "ipset", "restore")
	saved := parseIPSetSave(ns.must("ipset", "save"))
	enterNS(t, ns)
	if n := len(saved["NETPOL4-BIG"].Members); n != 5000 {
		t.Fatalf("ipset save lists %d members of NETPOL4-BIG, want 5000", n)
	}
	for name, want := range saved {
		got, ok := netlinkMembers(Set{Name: name, Type: want.Type, Family: want.Family})
		if !ok {
			t.Errorf("netlinkMembers(%s) failed", name)
			continue
		}
		if diff := cmp.Diff(want.Members, got.Members); diff != "" {
			t.Errorf("set %s over netlink (-ipset save +netlink):\n%s", name, diff)
		}
	}
	if _, ok := netlinkMembers(Set{Name: "NETPOL4-A", Type: HashNet, Family: IPv4}); ok {
		t.Error("netlinkMembers read a hash:ip set as hash:net")
	}
	if _, ok := netlinkMembers(Set{Name: "NETPOL4-A", Type: HashIP, Family: IPv6}); ok {
		t.Error("netlinkMembers read an inet set as inet6")
	}
	if _, ok := netlinkMembers(Set{Name: "NETPOL4-NONE", Type: HashIP, Family: IPv4}); ok {
		t.Error("netlinkMembers read a set that does not exist")
	}
}
