package ipt

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// familyRuleset is a ruleset of fam whose chain uses every set, so that the
// sets are in use while they are swapped.
func familyRuleset(fam Family, sets ...Set) *Ruleset {
	rs := &Ruleset{Family: fam, Sets: sets,
		Hooks: []Hook{{Chain: "FORWARD", Position: 1, Rule: Rule{Verdict: Jump("NETPOL-FAM")}}}}
	ch := Chain{Name: "NETPOL-FAM"}
	for _, s := range sets {
		dir := Src
		if s.Type == HashIPPort {
			dir = DstDst
		}
		ch.Rules = append(ch.Rules, Rule{Matches: []Match{SetMatch{Set: s.Name, Dir: dir}}, Verdict: Jump("ACCEPT")})
	}
	rs.Chains = []Chain{ch}
	return rs
}

// dualStackSets are the sets the compiler makes for a world of two
// dual-stack pods (10.244.1.2/fd00::2 with named ports, 10.244.1.3/fd00::3)
// and the ipBlocks 0.0.0.0/0 except 0.0.0.0/1 and 10.244.1.4/32, ::/0
// except 8000::/1, and fd00::/64 except fd00::3/128: each /0 split into /1
// halves, an excepted half stored as nomatch instead.
func dualStackSets(v4pods, v6pods []Member) (v4, v6 []Set) {
	v4 = []Set{
		{Name: "NETPOL4-B0", Type: HashNet, Family: IPv4, Members: []Member{
			{Entry: "0.0.0.0/1", NoMatch: true}, {Entry: "10.244.1.4/32", NoMatch: true}, {Entry: "128.0.0.0/1"}}},
		{Name: "NETPOL4-N", Type: HashIPPort, Family: IPv4, Members: []Member{
			{Entry: "10.244.1.2,tcp:6379"}, {Entry: "10.244.1.2,udp:53"}, {Entry: "10.244.1.3,sctp:9"}}},
		{Name: "NETPOL4-P", Type: HashIP, Family: IPv4, Members: v4pods},
	}
	v6 = []Set{
		{Name: "NETPOL6-B0", Type: HashNet, Family: IPv6, Members: []Member{{Entry: "8000::/1", NoMatch: true}, {Entry: "::/1"}}},
		{Name: "NETPOL6-B64", Type: HashNet, Family: IPv6, Members: []Member{
			{Entry: "fd00::/64"}, {Entry: "fd00::3/128", NoMatch: true}}},
		{Name: "NETPOL6-N", Type: HashIPPort, Family: IPv6, Members: []Member{
			{Entry: "fd00::2,tcp:6379"}, {Entry: "fd00::2,udp:53"}, {Entry: "fd00::3,sctp:9"}}},
		{Name: "NETPOL6-P", Type: HashIP, Family: IPv6, Members: v6pods},
	}
	return v4, v6
}

// TestKernelDualStackSets: the sets of a dual-stack world restore into the
// kernel in both families (inet and inet6 hash:net with nomatch excepts and
// /1 halves, hash:ip,port with each protocol) and read back equal; ipset
// answers lookups as the compiler means them (an excepted half and an
// excepted /128 are not in the set, a host of the other family never is);
// a sync that shrinks one pod's membership keeps the other pod's member in
// both families; and a dual-stack pod's entries added at ADD land in both.
func TestKernelDualStackSets(t *testing.T) {
	ns := newTestNS(t)
	r, ctx := ns.runner(ModeNFT), context.Background()
	v4, v6 := dualStackSets([]Member{{Entry: "10.244.1.2"}, {Entry: "10.244.1.3"}},
		[]Member{{Entry: "fd00::2"}, {Entry: "fd00::3"}})
	rs := []Ruleset{*familyRuleset(IPv4, v4...), *familyRuleset(IPv6, v6...)}
	if err := r.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	checkSets(t, ns, r, rs)
	for _, tc := range []struct {
		set, entry string
		in         bool
	}{
		{"NETPOL6-B0", "::5", true},
		{"NETPOL6-B0", "fd00::9", false}, // in the excepted half 8000::/1
		{"NETPOL6-B64", "fd00::9", true},
		{"NETPOL6-B64", "fd00::3", false}, // the excepted /128
		{"NETPOL6-B64", "fd01::9", false},
		{"NETPOL4-B0", "172.17.0.5", true},
		{"NETPOL4-B0", "10.244.1.9", false}, // in the excepted half 0.0.0.0/1
		{"NETPOL6-N", "fd00::2,tcp:6379", true},
		{"NETPOL6-N", "fd00::2,udp:6379", false},
		{"NETPOL6-N", "fd00::3,sctp:9", true},
		{"NETPOL4-N", "10.244.1.2,udp:53", true},
	} {
		_, err := ns.try("ipset", "test", tc.set, tc.entry)
		if got := err == nil; got != tc.in {
			t.Errorf("ipset test %s %s: in=%v, want %v", tc.set, tc.entry, got, tc.in)
		}
	}
	for _, tc := range [][2]string{{"NETPOL6-B0", "10.0.0.1"}, {"NETPOL4-B0", "fd00::9"}, {"NETPOL6-P", "10.244.1.2"}} {
		if out, err := ns.try("ipset", "test", tc[0], tc[1]); err == nil {
			t.Errorf("ipset test %s %s (other family) succeeded: %s", tc[0], tc[1], out)
		}
	}

	// The pod at .3/::3 leaves: its members go in both families, the pod
	// at .2/::2 keeps both of its own.
	v4, v6 = dualStackSets([]Member{{Entry: "10.244.1.2"}}, []Member{{Entry: "fd00::2"}})
	rs = []Ruleset{*familyRuleset(IPv4, v4...), *familyRuleset(IPv6, v6...)}
	if err := r.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	checkSets(t, ns, r, rs)

	add := []Entry{{Set: "NETPOL4-P", Value: "10.244.1.9"}, {Set: "NETPOL6-P", Value: "fd00::9"},
		{Set: "NETPOL4-N", Value: "10.244.1.9,tcp:80"}, {Set: "NETPOL6-N", Value: "fd00::9,tcp:80"}}
	if err := r.AddEntries(ctx, add); err != nil {
		t.Fatal(err)
	}
	got, err := r.ListEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(add, Entry{Set: "NETPOL4-P", Value: "10.244.1.2"}, Entry{Set: "NETPOL6-P", Value: "fd00::2"}) {
		if !got[e] {
			t.Errorf("after AddEntries, %s lacks %s", e.Set, e.Value)
		}
	}
}

// checkSets asserts that Diff finds nothing for each ruleset and that
// `ipset save` lists exactly the desired members of every set.
func checkSets(t *testing.T, ns *testNS, r *Runner, rs []Ruleset) {
	t.Helper()
	saved := parseIPSetSave(ns.must("ipset", "save"))
	for i := range rs {
		if d, err := r.Diff(context.Background(), &rs[i]); err != nil || len(d) != 0 {
			t.Errorf("%s: Diff = %q, %v", rs[i].Family, d, err)
		}
		for _, s := range rs[i].Sets {
			want := memberKeys(s)
			got := saved[s.Name]
			if got == nil {
				t.Errorf("set %s missing", s.Name)
				continue
			}
			if got.Family != s.Family || got.Type != s.Type {
				t.Errorf("set %s is %s %s, want %s %s", s.Name, got.Type, got.Family, s.Type, s.Family)
			}
			if diff := cmp.Diff(want, got.Members); diff != "" {
				t.Errorf("set %s (-desired +ipset save):\n%s", s.Name, diff)
			}
		}
	}
}
