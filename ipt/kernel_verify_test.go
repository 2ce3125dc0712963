package ipt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestKernelHolds: Holds reports nothing when the kernel holds exactly the
// rulesets (another tool's chains and sets are not ours to report), and
// reports a missing or extra member, a flushed chain, a missing hook, and
// a chain or set of ours that the rulesets do not name; after it reported
// nothing, the Runner's next Apply of the same rulesets changes nothing.
// Read from inside the namespace (the agent's case: sets over netlink) and
// through `ip netns exec` (sets through `ipset save`).
func TestKernelHolds(t *testing.T) {
	for _, inside := range []bool{false, true} {
		t.Run(fmt.Sprintf("inside=%v", inside), func(t *testing.T) {
			ns, r := nftRunner(t, inside)
			ctx := context.Background()
			rulesets := []Ruleset{*testRuleset(), *testRuleset6()}
			ns.foreign()
			if err := r.Apply(ctx, rulesets); err != nil {
				t.Fatal(err)
			}
			holds := func() []string {
				t.Helper()
				d, err := (&Runner{Mode: r.Mode, NetNS: r.NetNS, Timeout: time.Minute}).Holds(ctx, rulesets)
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			if d := holds(); len(d) != 0 {
				t.Fatalf("Holds after Apply = %q", d)
			}
			for _, tc := range []struct {
				do, undo []string
				want     string
			}{
				{[]string{"ipset", "del", "NETPOL4-PEERS", "10.0.0.2"}, []string{"ipset", "add", "NETPOL4-PEERS", "10.0.0.2"},
					"set NETPOL4-PEERS: missing member: 10.0.0.2"},
				{[]string{"ipset", "add", "NETPOL6-PEERS", "fd02::/64", "nomatch"}, []string{"ipset", "del", "NETPOL6-PEERS", "fd02::/64"},
					"set NETPOL6-PEERS: unexpected member: fd02::/64 nomatch"},
				{[]string{"ip6tables", "-w", "-D", "NETPOL-TAIL", "1"}, []string{"ip6tables", "-w", "-A", "NETPOL-TAIL", "-j", "DROP"},
					"chain NETPOL-TAIL: missing rule: -A NETPOL-TAIL -j DROP"},
				{[]string{"iptables", "-w", "-D", "FORWARD", "1"}, []string{"iptables", "-w", "-I", "FORWARD", "1", "-m", "comment", "--comment", "netpol hook", "-j", "NETPOL-FWD"},
					"hook missing from FORWARD: "},
				{[]string{"ip6tables", "-w", "-N", "NETPOL-STRAY"}, []string{"ip6tables", "-w", "-X", "NETPOL-STRAY"},
					"chain NETPOL-STRAY not wanted"},
				{[]string{"ipset", "create", "NETPOL-TMP-X", "hash:ip"}, []string{"ipset", "destroy", "NETPOL-TMP-X"},
					"set NETPOL-TMP-X not wanted"},
			} {
				ns.must(tc.do...)
				if d := holds(); len(d) != 1 || !strings.HasPrefix(d[0], tc.want) {
					t.Errorf("after %v: Holds = %q, want one line %q...", tc.do, d, tc.want)
				}
				ns.must(tc.undo...)
				if d := holds(); len(d) != 0 {
					t.Fatalf("after %v: Holds = %q", tc.undo, d)
				}
			}
			// A Runner that found them held applies them as unchanged: a
			// rule deleted behind its back afterwards stays deleted.
			fresh := &Runner{Mode: r.Mode, NetNS: r.NetNS, Timeout: time.Minute}
			if d, err := fresh.Holds(ctx, rulesets); err != nil || len(d) != 0 {
				t.Fatalf("Holds = %q, %v", d, err)
			}
			ns.must("iptables", "-w", "-D", "NETPOL-TAIL", "1")
			if err := fresh.Apply(ctx, rulesets); err != nil {
				t.Fatal(err)
			}
			if d := holds(); len(d) != 1 {
				t.Errorf("the Runner rewrote a chain after Holds found it held: Holds = %q", d)
			}
		})
	}
}

// TestKernelNetlinkAllSetsMatchSave: one netlink dump of every set gives
// each set's type and family, and the members of ours exactly as `ipset
// save` prints them, across the many messages of a big set.
func TestKernelNetlinkAllSetsMatchSave(t *testing.T) {
	ns := newTestNS(t)
	ns.mustIn(`create NETPOL4-A hash:ip family inet
add NETPOL4-A 10.0.0.1
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
create NETPOL6-N hash:net family inet6
add NETPOL6-N fd00::/64
add NETPOL6-N fd00::8/125 nomatch
create NETPOL4-E hash:ip family inet
create other-ports bitmap:port range 1-1000
add other-ports 80
create other-net hash:net,iface family inet
add other-net 10.0.0.0/8,eth0
`, "ipset", "restore")
	var big strings.Builder
	for _, name := range []string{"NETPOL4-BIG", "NETPOL4-BIG2"} {
		fmt.Fprintf(&big, "create %s hash:ip family inet maxelem 65536\n", name)
		for i := 0; i < 5000; i++ {
			fmt.Fprintf(&big, "add %s 10.2.%d.%d\n", name, i>>8, i&255)
		}
	}
	ns.mustIn(big.String(), "ipset", "restore")
	saved := parseIPSetSave(ns.must("ipset", "save"))
	enterNS(t, ns)
	got, ok := netlinkAllSets()
	if !ok {
		t.Fatal("netlinkAllSets failed")
	}
	for name, want := range saved {
		if !Owned(name) {
			if got[name] == nil {
				t.Errorf("set %s missing from the dump", name)
			}
			continue
		}
		if diff := cmp.Diff(want, got[name], cmpopts.IgnoreFields(savedSet{}, "Refs", "RefsKnown")); diff != "" {
			t.Errorf("set %s over netlink (-ipset save +netlink):\n%s", name, diff)
		}
		if got[name] != nil && !got[name].RefsKnown {
			t.Errorf("set %s over netlink: no references", name)
		}
	}
	if len(got) != len(saved) {
		t.Errorf("the dump has %d sets, ipset save %d", len(got), len(saved))
	}
}

// TestKernelFreshApplyKeepsHeldChains: a Runner that remembers nothing (a
// new process) rewrites the chains the kernel does not hold rule for rule,
// and leaves the others alone (their rule counters survive).
func TestKernelFreshApplyKeepsHeldChains(t *testing.T) {
	ns := newTestNS(t)
	ctx := context.Background()
	rs := testRuleset()
	if err := ns.runner(ModeNFT).Apply(ctx, []Ruleset{*rs}); err != nil {
		t.Fatal(err)
	}
	ns.must("iptables", "-w", "-R", "NETPOL-FWD", "1", "-c", "5", "7", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN")
	ns.must("iptables", "-w", "-D", "NETPOL-TAIL", "1")
	if err := ns.runner(ModeNFT).Apply(ctx, []Ruleset{*rs}); err != nil {
		t.Fatal(err)
	}
	if d, err := ns.runner(ModeNFT).Diff(ctx, rs); err != nil || len(d) != 0 {
		t.Errorf("Diff after a fresh Apply = %q, %v", d, err)
	}
	if save := ns.must("iptables-save", "-c", "-t", "filter"); !strings.Contains(save, "[5:7] -A NETPOL-FWD -m conntrack") {
		t.Errorf("a fresh Apply rewrote NETPOL-FWD, which the kernel held:\n%s", save)
	}
}
