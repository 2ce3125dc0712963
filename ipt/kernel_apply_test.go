package ipt

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testRuleset6 is testRuleset for IPv6.
func testRuleset6() *Ruleset {
	rs := testRuleset()
	rs.Family = IPv6
	rs.Chains[0].Rules[1].Matches[0] = SetMatch{Set: "NETPOL6-PEERS", Dir: Src}
	rs.Sets = []Set{{Name: "NETPOL6-PEERS", Type: HashNet, Family: IPv6, Members: []Member{
		{Entry: "fd00::/64"}, {Entry: "fd00::8/125", NoMatch: true}, {Entry: "fd01::1"}}}}
	return rs
}

func TestKernelDiffAndRepair(t *testing.T) {
	ns := newTestNS(t)
	r, ctx := ns.runner(ModeNFT), context.Background()
	rs := testRuleset()
	if err := r.Apply(ctx, []Ruleset{*rs}); err != nil {
		t.Fatal(err)
	}
	if d, err := r.Diff(ctx, rs); err != nil || len(d) != 0 {
		t.Fatalf("Diff after Apply = %q, %v", d, err)
	}
	ns.must("iptables", "-w", "-D", "NETPOL-FWD", "2")
	ns.must("iptables", "-w", "-D", "FORWARD", "1")
	ns.must("ipset", "del", "NETPOL4-PEERS", "10.0.0.2")
	ns.must("ipset", "add", "NETPOL4-PEERS", "10.9.9.9")
	d, err := r.Diff(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`hook missing from FORWARD: -A FORWARD -m comment --comment "netpol hook" -j NETPOL-FWD`,
		`chain NETPOL-FWD: missing rule: -A NETPOL-FWD -p tcp -m set --match-set NETPOL4-PEERS src -m tcp --dport 80 -m comment --comment "ns/allow web" -j ACCEPT`,
		"set NETPOL4-PEERS: missing member: 10.0.0.2",
		"set NETPOL4-PEERS: unexpected member: 10.9.9.9",
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
	ns.must("iptables", "-w", "-D", "NETPOL-FWD", "-g", "NETPOL-TAIL")
	ns.must("iptables", "-w", "-F", "NETPOL-TAIL")
	ns.must("iptables", "-w", "-X", "NETPOL-TAIL")
	d, _ = r.Diff(ctx, rs)
	if !contains(d, "chain NETPOL-TAIL missing") || !contains(d, "chain NETPOL-FWD: missing rule: -A NETPOL-FWD -g NETPOL-TAIL") {
		t.Errorf("Diff after deleting a chain = %q", d)
	}
	// The Runner remembers what it applied: an unchanged ruleset is not
	// rewritten, so tampering survives until the caller, having seen the
	// drift, makes it Forget.
	if err := r.Apply(ctx, []Ruleset{*rs}); err != nil {
		t.Fatal(err)
	}
	if d, _ := r.Diff(ctx, rs); !contains(d, "chain NETPOL-TAIL missing") {
		t.Errorf("an unchanged Apply rewrote the tampered chain: Diff = %q", d)
	}
	r.Forget()
	if err := r.Apply(ctx, []Ruleset{*rs}); err != nil {
		t.Fatal(err)
	}
	if d, err := r.Diff(ctx, rs); err != nil || len(d) != 0 {
		t.Errorf("Diff after repair = %q, %v", d, err)
	}
}

// TestKernelApplyRewritesOnlyWhatChanged: after a first Apply, a second one
// with one chain and one set changed rewrites those and leaves the rest (a
// rule deleted by hand elsewhere proves the other chain was not rewritten).
func TestKernelApplyRewritesOnlyWhatChanged(t *testing.T) {
	ns := newTestNS(t)
	r, ctx := ns.runner(ModeNFT), context.Background()
	v1 := testRuleset()
	if err := r.Apply(ctx, []Ruleset{*v1}); err != nil {
		t.Fatal(err)
	}
	ns.must("iptables", "-w", "-D", "NETPOL-FWD", "2") // untouched by v2
	v2 := testRuleset()
	v2.Chains[1].Rules = []Rule{{Comment: "changed", Verdict: Jump("ACCEPT")}}
	v2.Sets[0].Members = append(v2.Sets[0].Members, Member{Entry: "10.0.0.77"})
	if err := r.Apply(ctx, []Ruleset{*v2}); err != nil {
		t.Fatal(err)
	}
	d, err := r.Diff(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`chain NETPOL-FWD: missing rule: -A NETPOL-FWD -p tcp -m set --match-set NETPOL4-PEERS src -m tcp --dport 80 -m comment --comment "ns/allow web" -j ACCEPT`}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("after a partial Apply, only the hand-deleted rule may differ (-want +got):\n%s", diff)
	}
	if sets := ns.must("ipset", "list", "-n"); strings.Contains(sets, "NETPOL-TMP-") {
		t.Errorf("temporary sets left behind:\n%s", sets)
	}
}

// TestKernelApplyRemovesStale: the chains and sets of ours that a ruleset
// no longer has are removed, with the hooks that jump to them: those the
// Runner itself applied (memory), and, for a new Runner, every chain of ours
// the kernel lists, such as one left by a sync killed half-way.
func TestKernelApplyRemovesStale(t *testing.T) {
	ns := newTestNS(t)
	r, ctx := ns.runner(ModeNFT), context.Background()
	v1 := testRuleset()
	v1.Chains = append(v1.Chains, Chain{Name: "NETPOL-OLD", Rules: []Rule{
		{Matches: []Match{SetMatch{Set: "NETPOL4-OLD", Dir: Dst}}, Verdict: Jump("DROP")}}})
	v1.Hooks = append(v1.Hooks, Hook{Chain: "INPUT", Position: 1, Rule: Rule{Verdict: Jump("NETPOL-OLD")}})
	v1.Sets = append(v1.Sets, Set{Name: "NETPOL4-OLD", Type: HashIP, Family: IPv4, Members: []Member{{Entry: "10.1.1.1"}}})
	v2 := testRuleset()
	v2.Chains[1].Rules = []Rule{{Comment: "changed", Verdict: Jump("ACCEPT")}}
	v2.Sets[0].Members = []Member{{Entry: "10.0.0.3"}}
	check := func(when string) {
		t.Helper()
		if got, _ := r.ListChains(ctx, IPv4); !cmp.Equal(got, []string{"NETPOL-FWD", "NETPOL-TAIL"}) {
			t.Errorf("%s: chains %q", when, got)
		}
		if got := ns.setNames(); !cmp.Equal(got, []string{"NETPOL4-PEERS"}) {
			t.Errorf("%s: sets %q (stale set and temps must be gone)", when, got)
		}
		rules, _ := ns.filterRules(ModeNFT, IPv4)
		if len(rules["INPUT"]) != 0 {
			t.Errorf("%s: hook to the stale chain survived: %q", when, rules["INPUT"])
		}
		if d, err := r.Diff(ctx, v2); err != nil || len(d) != 0 {
			t.Errorf("%s: Diff = %q, %v", when, d, err)
		}
	}
	if err := r.Apply(ctx, []Ruleset{*v1}); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, []Ruleset{*v2}); err != nil {
		t.Fatal(err)
	}
	check("stale chain known to the Runner")

	// A sync killed after its transaction, before anything was recorded:
	// the chain, its hook and its set exist, and only the kernel knows.
	if err := r.Apply(ctx, []Ruleset{*v1}); err != nil {
		t.Fatal(err)
	}
	r = ns.runner(ModeNFT)
	if err := r.Apply(ctx, []Ruleset{*v2}); err != nil {
		t.Fatal(err)
	}
	check("stale chain in the kernel, new Runner")
}

// foreign puts rules, a chain and a set that are not ours in both families.
func (ns *testNS) foreign() {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		ns.must(ipt, "-w", "-A", "FORWARD", "-j", "ACCEPT")
		ns.must(ipt, "-w", "-N", "FOO")
		ns.must(ipt, "-w", "-A", "FOO", "-m", "comment", "--comment", "NETPOL in a comment", "-j", "RETURN")
		ns.must(ipt, "-w", "-A", "INPUT", "-j", "FOO")
	}
	ns.mustIn("create foo hash:ip\nadd foo 1.2.3.4\ncreate foo6 hash:net family inet6\nadd foo6 fd00::/8\n", "ipset", "restore")
}

// snapshot is the filter tables and sets, without the timestamps and the
// random initval of each set (a set refilled through swap gets a new one);
// set lines are sorted, as ipset prints members in hash order.
func (ns *testNS) snapshot() string {
	var b strings.Builder
	for _, cmd := range [][]string{{"iptables-save", "-t", "filter"}, {"ip6tables-save", "-t", "filter"}, {"ipset", "save"}} {
		var lines []string
		for _, line := range strings.Split(ns.must(cmd...), "\n") {
			if !strings.HasPrefix(line, "#") {
				line, _, _ = strings.Cut(line, " initval ")
				lines = append(lines, line)
			}
		}
		if cmd[0] == "ipset" {
			sort.Strings(lines)
		}
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}

func TestKernelForeignSurvivesApplyAndUninstall(t *testing.T) {
	ns := newTestNS(t)
	r, ctx := ns.runner(ModeNFT), context.Background()
	ns.foreign()
	before := ns.snapshot()
	if err := r.Apply(ctx, []Ruleset{*testRuleset(), *testRuleset6()}); err != nil {
		t.Fatal(err)
	}
	during := ns.snapshot()
	for _, line := range strings.Split(before, "\n") {
		if !strings.Contains(during, line) {
			t.Errorf("Apply lost foreign line %q", line)
		}
	}
	for _, rs := range []*Ruleset{testRuleset(), testRuleset6()} {
		if d, err := r.Diff(ctx, rs); err != nil || len(d) != 0 {
			t.Errorf("%s Diff = %q, %v", rs.Family, d, err)
		}
	}
	for i := 1; i <= 2; i++ {
		if err := r.Uninstall(ctx); err != nil {
			t.Fatalf("Uninstall %d: %v", i, err)
		}
		if diff := cmp.Diff(before, ns.snapshot()); diff != "" {
			t.Errorf("Uninstall %d: kernel differs from before Apply (-before +after):\n%s", i, diff)
		}
	}
	if out := ns.must("ipset", "list"); strings.Contains(out, "Name: "+Prefix) {
		t.Errorf("ipset list still has our sets:\n%s", out)
	}
}

func TestKernelUninstallEmptyNamespace(t *testing.T) {
	ns := newTestNS(t)
	r := ns.runner(ModeNFT)
	for i := 0; i < 2; i++ {
		if err := r.Uninstall(context.Background()); err != nil {
			t.Fatalf("Uninstall %d: %v", i+1, err)
		}
	}
	if s := ns.snapshot(); traceOf(s) {
		t.Errorf("trace left:\n%s", s)
	}
}

func TestKernelInvalidRulesetKeepsInstalled(t *testing.T) {
	ns := newTestNS(t)
	r, ctx := ns.runner(ModeNFT), context.Background()
	good := testRuleset()
	if err := r.Apply(ctx, []Ruleset{*good}); err != nil {
		t.Fatal(err)
	}
	before := ns.snapshot()
	bad := testRuleset()
	bad.Chains[1].Rules = append(bad.Chains[1].Rules, Rule{Verdict: Jump("NETPOL-NOPE")})
	err := r.Apply(ctx, []Ruleset{*bad})
	var re *RestoreError
	if !errors.As(err, &re) {
		t.Fatalf("Apply of a rule jumping to a missing chain = %v, want a *RestoreError", err)
	}
	if re.Line == 0 || len(re.Context) == 0 || !strings.Contains(err.Error(), "NETPOL-NOPE") {
		t.Errorf("RestoreError without line or context: %v", err)
	}
	t.Logf("error: %v", err)
	if diff := cmp.Diff(before, ns.snapshot()); diff != "" {
		t.Errorf("failed Apply changed the kernel (-before +after):\n%s", diff)
	}
	if d, err := r.Diff(ctx, good); err != nil || len(d) != 0 {
		t.Errorf("installed rules damaged: Diff = %q, %v", d, err)
	}
}

func TestKernelEntries(t *testing.T) {
	ns := newTestNS(t)
	r, ctx := ns.runner(ModeNFT), context.Background()
	if err := r.Apply(ctx, []Ruleset{*testRuleset(), *testRuleset6()}); err != nil {
		t.Fatal(err)
	}
	add := []Entry{{Set: "NETPOL4-PEERS", Value: "10.0.0.3"}, {Set: "NETPOL6-PEERS", Value: "fd02::/64"}}
	for i := 0; i < 2; i++ {
		if err := r.AddEntries(ctx, add); err != nil {
			t.Fatalf("AddEntries %d: %v", i+1, err)
		}
	}
	got, err := r.ListEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(add, Entry{Set: "NETPOL4-PEERS", Value: "10.0.0.1"}) {
		if !got[e] {
			t.Errorf("ListEntries lacks %v: %v", e, got)
		}
	}
	del := append(add, Entry{Set: "NETPOL4-GONE", Value: "1.1.1.1"})
	for i := 0; i < 2; i++ {
		if err := r.DelEntries(ctx, del); err != nil {
			t.Fatalf("DelEntries %d: %v", i+1, err)
		}
	}
	if got, _ := r.ListEntries(ctx); got[add[0]] || got[add[1]] || len(got) != 5 {
		t.Errorf("after DelEntries: %v", got)
	}
	var re *RestoreError
	if err := r.AddEntries(ctx, []Entry{{Set: "NETPOL4-GONE", Value: "1.1.1.1"}}); !errors.As(err, &re) || re.Line != 1 {
		t.Errorf("AddEntries to a missing set = %v, want a RestoreError at line 1", err)
	}
	if err := r.AddEntries(ctx, []Entry{{Set: "foo", Value: "1.1.1.1"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddEntries to a foreign set = %v, want ErrInvalid", err)
	}
}

func TestKernelDetectMode(t *testing.T) {
	ns := newTestNS(t)
	ctx := context.Background()
	if m, err := DetectMode(ctx, ns.name); err != nil || m != ModeNFT {
		t.Errorf("empty namespace: DetectMode = %q, %v; want nft", m, err)
	}
	ns.must("iptables-legacy", "-w", "-t", "mangle", "-N", "KUBE-IPTABLES-HINT")
	if m, err := DetectMode(ctx, ns.name); err != nil || m != ModeLegacy {
		t.Errorf("legacy hint chain: DetectMode = %q, %v; want legacy", m, err)
	}
	r := ns.runner(ModeAuto)
	if err := r.Apply(ctx, []Ruleset{*testRuleset()}); err != nil {
		t.Fatal(err)
	}
	if out := ns.must("iptables-legacy-save", "-t", "filter"); !strings.Contains(out, ":NETPOL-FWD") {
		t.Errorf("auto mode did not use legacy:\n%s", out)
	}
}

// TestKernelMissingIP6Tables runs with a PATH that has the IPv4 tools only:
// the IPv6 half of Apply must fail with an error naming the binary.
func TestKernelMissingIP6Tables(t *testing.T) {
	ns := newTestNS(t)
	dir := t.TempDir()
	for _, bin := range []string{"ip", "ipset", "iptables-nft", "iptables-nft-save", "iptables-nft-restore"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			t.Skipf("%s: %v", bin, err)
		}
		if err := os.Symlink(path, filepath.Join(dir, bin)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	r, ctx := ns.runner(ModeNFT), context.Background()
	if err := r.Apply(ctx, []Ruleset{*testRuleset()}); err != nil {
		t.Fatalf("IPv4 only: %v", err)
	}
	err := r.Apply(ctx, []Ruleset{*testRuleset(), *testRuleset6()})
	if err == nil || !strings.Contains(err.Error(), "ip6tables-nft") {
		t.Errorf("Apply with IPv6 = %v, want an error naming ip6tables-nft", err)
	}
	if err := r.Usable(ctx, IPv6); err == nil || !strings.Contains(err.Error(), "ip6tables-nft") {
		t.Errorf("Usable(IPv6) = %v, want an error naming ip6tables-nft", err)
	}
	if err := r.Usable(ctx, IPv4); err != nil {
		t.Errorf("Usable(IPv4) = %v", err)
	}
	if d, err := r.Diff(ctx, testRuleset()); err != nil || len(d) != 0 {
		t.Errorf("IPv4 after the failed IPv6 half: Diff = %q, %v", d, err)
	}
}

// TestKernelHookPushedDownIsRepaired: another tool inserting an ACCEPT above
// our hook would let traffic skip policy; Diff reports it and the next whole
// Apply moves the hook back to its position, keeping the foreign rule.
func TestKernelHookPushedDownIsRepaired(t *testing.T) {
	ns := newTestNS(t)
	r, ctx := ns.runner(ModeNFT), context.Background()
	rs := testRuleset()
	if err := r.Apply(ctx, []Ruleset{*rs}); err != nil {
		t.Fatal(err)
	}
	ns.must("iptables", "-w", "-I", "FORWARD", "1", "-j", "ACCEPT")
	d, err := r.Diff(ctx, rs)
	if err != nil || !contains(d, `hook not at position 1 of FORWARD (at 2): -A FORWARD -m comment --comment "netpol hook" -j NETPOL-FWD`) {
		t.Fatalf("Diff with the hook pushed down = %q, %v", d, err)
	}
	r.Forget()
	if err := r.Apply(ctx, []Ruleset{*rs}); err != nil {
		t.Fatal(err)
	}
	got := ns.must("iptables", "-w", "-S", "FORWARD")
	want := "-P FORWARD ACCEPT\n-A FORWARD -m comment --comment \"netpol hook\" -j NETPOL-FWD\n-A FORWARD -j ACCEPT\n"
	if got != want {
		t.Errorf("FORWARD after repair:\n%s\nwant:\n%s", got, want)
	}
}

// TestKernelFailedFamilyIsOldOrNew: when one family's transaction fails, each
// family ends entirely old or entirely new: the IPv4 rules and sets are the
// new ones (the revoked peer is gone from its set), and the IPv6 rules are the
// old ones with their sets shrunk back to the old members, whether the Runner
// knows the last state (memory) or reads the kernel (a new Runner).
func TestKernelFailedFamilyIsOldOrNew(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		ns := newTestNS(t)
		r, ctx := ns.runner(ModeNFT), context.Background()
		old4, old6 := testRuleset(), testRuleset6()
		if err := r.Apply(ctx, []Ruleset{*old4, *old6}); err != nil {
			t.Fatal(err)
		}
		if fresh {
			r = ns.runner(ModeNFT)
		}
		new4, bad6 := testRuleset(), testRuleset6()
		new4.Sets[0].Members = []Member{{Entry: "10.0.0.1"}, {Entry: "10.0.0.3"}} // 10.0.0.2 revoked
		bad6.Sets[0].Members = append(bad6.Sets[0].Members, Member{Entry: "fd02::1"})
		bad6.Chains[1].Rules = append(bad6.Chains[1].Rules, Rule{Verdict: Jump("NETPOL-NOPE")})
		err := r.Apply(ctx, []Ruleset{*new4, *bad6})
		var re *RestoreError
		if !errors.As(err, &re) {
			t.Fatalf("fresh=%v: Apply with a broken IPv6 rule = %v, want a *RestoreError", fresh, err)
		}
		if d, err := r.Diff(ctx, new4); err != nil || len(d) != 0 {
			t.Errorf("fresh=%v: IPv4 is not entirely new: Diff = %q, %v", fresh, d, err)
		}
		if d, err := r.Diff(ctx, old6); err != nil || len(d) != 0 {
			t.Errorf("fresh=%v: IPv6 is not entirely old: Diff = %q, %v", fresh, d, err)
		}
		if out := ns.must("ipset", "list", "NETPOL4-PEERS"); strings.Contains(out, "10.0.0.2\n") {
			t.Errorf("fresh=%v: revoked peer still in its set after the failed sync:\n%s", fresh, out)
		}
	}
}
