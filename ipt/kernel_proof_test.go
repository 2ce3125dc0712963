package ipt

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKernelHoldsProven: a read-back that found the rules as wanted returns
// a proof; given it, the next read-back reads no rules (no iptables-save
// runs) and still reports a set changed behind its back; any rule changed,
// a chain added, a hook deleted, in either family, moves the nftables
// generation, so the proof is refused, the rules are read and the
// difference reported. A proof of other rules is refused too, and a
// Runner driving another namespace makes none.
func TestKernelHoldsProven(t *testing.T) {
	ns := newTestNS(t)
	outside := ns.runner(ModeNFT)
	enterNS(t, ns)
	ctx := context.Background()
	rulesets := []Ruleset{*testRuleset(), *testRuleset6()}
	ns.foreign()
	if err := (&Runner{Mode: ModeNFT, Timeout: time.Minute}).Apply(ctx, rulesets); err != nil {
		t.Fatal(err)
	}
	var saves int
	holds := func(rs []Ruleset, proof string) ([]string, string) {
		t.Helper()
		r := &Runner{Mode: ModeNFT, Timeout: time.Minute, Trace: func(cmd string, _ time.Duration) {
			if strings.Contains(cmd, "-save") {
				saves++
			}
		}}
		d, next, err := r.HoldsProven(ctx, rs, proof)
		if err != nil {
			t.Fatal(err)
		}
		return d, next
	}
	d, proof := holds(rulesets, "")
	if len(d) != 0 || proof == "" {
		t.Fatalf("first read-back: %q, proof %q; want no difference and a proof", d, proof)
	}
	saves = 0
	if d, next := holds(rulesets, proof); len(d) != 0 || next != proof || saves != 0 {
		t.Fatalf("with the proof: %q, proof %q (same %v), %d saves; want nothing, the same proof, no save", d, next, next == proof, saves)
	}
	// A set member: no generation sees it, the sets are read anyway.
	ns.must("ipset", "del", "NETPOL4-PEERS", "10.0.0.2")
	if d, next := holds(rulesets, proof); len(d) != 1 || !strings.Contains(d[0], "missing member: 10.0.0.2") || next != proof {
		t.Errorf("a member deleted: %q, proof kept %v; want the member reported", d, next == proof)
	}
	ns.must("ipset", "add", "NETPOL4-PEERS", "10.0.0.2")
	for _, tc := range []struct {
		do, undo []string
		want     string
	}{
		{[]string{"ip6tables", "-w", "-D", "NETPOL-TAIL", "1"}, []string{"ip6tables", "-w", "-A", "NETPOL-TAIL", "-j", "DROP"},
			"chain NETPOL-TAIL: missing rule: -A NETPOL-TAIL -j DROP"},
		{[]string{"iptables", "-w", "-D", "FORWARD", "1"}, []string{"iptables", "-w", "-I", "FORWARD", "1", "-m", "comment", "--comment", "netpol hook", "-j", "NETPOL-FWD"},
			"hook missing from FORWARD: "},
		{[]string{"iptables", "-w", "-N", "NETPOL-STRAY"}, []string{"iptables", "-w", "-X", "NETPOL-STRAY"},
			"chain NETPOL-STRAY not wanted"},
	} {
		ns.must(tc.do...)
		d, next := holds(rulesets, proof)
		if len(d) != 1 || !strings.HasPrefix(d[0], tc.want) || next != "" {
			t.Errorf("after %v with the proof: %q, proof %q; want one line %q... and no proof", tc.do, d, next, tc.want)
		}
		ns.must(tc.undo...)
		if d, next := holds(rulesets, proof); len(d) != 0 || next == "" || next == proof {
			t.Errorf("after %v: %q, proof %q; want nothing and a new proof", tc.undo, d, next)
		}
	}
	_, proof = holds(rulesets, "")
	other := slices.Clone(rulesets)
	other[0].Chains = slices.Clone(other[0].Chains)
	other[0].Chains[1] = Chain{Name: "NETPOL-TAIL", Rules: []Rule{{Verdict: Jump("ACCEPT")}}}
	saves = 0
	if d, next := holds(other, proof); len(d) == 0 || next != "" || saves == 0 {
		t.Errorf("other rules with the proof of these: %q, proof %q, %d saves; want them read back and differing", d, next, saves)
	}
	if _, next, err := outside.HoldsProven(ctx, rulesets, ""); err != nil || next != "" {
		t.Errorf("a Runner of another namespace: proof %q, %v; want none", next, err)
	}
}

// TestKernelAppliedProof: an Apply with no memory (it reads the rules back
// and rewrites what differs) makes a proof that a later read-back takes
// without reading the rules; when another transaction commits between its
// read-back and its end, it makes none, and the change it did not see is
// still reported.
func TestKernelAppliedProof(t *testing.T) {
	ns := newTestNS(t)
	enterNS(t, ns)
	ctx := context.Background()
	rulesets := []Ruleset{*testRuleset(), *testRuleset6()}
	r := &Runner{Mode: ModeNFT, Timeout: time.Minute}
	if err := r.Apply(ctx, rulesets); err != nil {
		t.Fatal(err)
	}
	proof := r.AppliedProof()
	if proof == "" || r.AppliedProof() != "" {
		t.Fatalf("Apply made proof %q, then AppliedProof again; want one proof, once", proof)
	}
	saves := 0
	fresh := &Runner{Mode: ModeNFT, Timeout: time.Minute, Trace: func(cmd string, _ time.Duration) {
		if strings.Contains(cmd, "-save") {
			saves++
		}
	}}
	if d, next, err := fresh.HoldsProven(ctx, rulesets, proof); err != nil || len(d) != 0 || next != proof || saves != 0 {
		t.Fatalf("with the applied proof: %q, same proof %v, %v, %d saves", d, next == proof, err, saves)
	}
	ns.must("iptables", "-w", "-F", "NETPOL-TAIL")
	sneaked := false
	sneaky := &Runner{Mode: ModeNFT, Timeout: time.Minute, Trace: func(cmd string, _ time.Duration) {
		if strings.HasPrefix(cmd, "iptables-nft-save") && !sneaked {
			sneaked = true
			ns.must("iptables", "-w", "-N", "NETPOL-SNEAK")
		}
	}}
	if err := sneaky.Apply(ctx, rulesets); err != nil {
		t.Fatal(err)
	}
	if !sneaked {
		t.Fatal("the Apply read no rules back")
	}
	if p := sneaky.AppliedProof(); p != "" {
		t.Errorf("a transaction between the read-back and the end: proof %q; want none", p)
	}
	if d, _, err := fresh.HoldsProven(ctx, rulesets, proof); err != nil || len(d) != 1 || d[0] != "chain NETPOL-SNEAK not wanted" {
		t.Errorf("after: %q, %v; want the sneaked chain reported", d, err)
	}
}

// TestKernelProvenApplyFixesTheSetsThatDiffer: a Runner whose read-back
// proved the rules but found sets differing (a --once run after a pod
// label changed) remembers only the sets that matched; its Apply then
// gives the others exactly their members: the one the desired set gained
// is added, and one the kernel holds beyond it is removed.
func TestKernelProvenApplyFixesTheSetsThatDiffer(t *testing.T) {
	ns := newTestNS(t)
	enterNS(t, ns)
	ctx := context.Background()
	rulesets := []Ruleset{*testRuleset(), *testRuleset6()}
	if err := (&Runner{Mode: ModeNFT, Timeout: time.Minute}).Apply(ctx, rulesets); err != nil {
		t.Fatal(err)
	}
	_, proof, err := (&Runner{Mode: ModeNFT, Timeout: time.Minute}).HoldsProven(ctx, rulesets, "")
	if err != nil || proof == "" {
		t.Fatalf("first read-back: proof %q, %v", proof, err)
	}
	ns.must("ipset", "add", "NETPOL4-PEERS", "10.0.0.9") // beyond what any ruleset wants
	next := slices.Clone(rulesets)
	next[0].Sets = slices.Clone(next[0].Sets)
	next[0].Sets[0].Members = append(slices.Clone(next[0].Sets[0].Members), Member{Entry: "10.0.0.3"})
	r := &Runner{Mode: ModeNFT, Timeout: time.Minute}
	if d, got, err := r.HoldsProven(ctx, next, proof); err != nil || len(d) != 2 || got != proof {
		t.Fatalf("read-back with the proof: %q, same proof %v, %v; want the two members reported", d, got == proof, err)
	}
	if err := r.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	out := ns.must("ipset", "list", "NETPOL4-PEERS")
	for _, m := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		if !strings.Contains(out, "\n"+m+"\n") {
			t.Errorf("after Apply, NETPOL4-PEERS lacks %s:\n%s", m, out)
		}
	}
	if strings.Contains(out, "10.0.0.9") {
		t.Errorf("after Apply, NETPOL4-PEERS still holds 10.0.0.9, which no ruleset wants:\n%s", out)
	}
}
