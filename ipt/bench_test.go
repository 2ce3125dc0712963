package ipt

import (
	"context"
	"fmt"
	"testing"
)

// benchRuleset has n rules in one chain, each matching one of 10 sets, and
// n entries spread over those sets.
func benchRuleset(n int) *Ruleset {
	rs := &Ruleset{Family: IPv4,
		Hooks: []Hook{{Chain: "FORWARD", Position: 1, Rule: Rule{Verdict: Jump("NETPOL-BENCH")}}}}
	const sets = 10
	for s := 0; s < sets; s++ {
		rs.Sets = append(rs.Sets, Set{Name: fmt.Sprintf("NETPOL4-BENCH-%d", s), Type: HashIP, Family: IPv4})
	}
	for i := 0; i < n; i++ {
		s := &rs.Sets[i%sets]
		s.Members = append(s.Members, Member{Entry: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)})
	}
	c := Chain{Name: "NETPOL-BENCH"}
	for i := 0; i < n; i++ {
		c.Rules = append(c.Rules, Rule{
			Matches: []Match{Protocol("tcp"), SetMatch{Set: rs.Sets[i%sets].Name, Dir: Src},
				DPorts{Proto: "tcp", Ports: []PortRange{{First: int32(i%65535 + 1)}}}},
			Comment: fmt.Sprintf("default/policy-%d", i),
			Verdict: Jump("ACCEPT"),
		})
	}
	rs.Chains = []Chain{c}
	return rs
}

// BenchmarkApply measures one whole sync (sets swapped in, chain rewritten in
// one transaction, hook checked) of n rules and n set entries, re-applied
// over itself, in a throwaway namespace.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			ns := newTestNS(b)
			r, ctx := ns.runner(ModeNFT), context.Background()
			rs := []Ruleset{*benchRuleset(n)}
			if err := r.Apply(ctx, rs); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := r.Apply(ctx, rs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDiff measures the read-back of n rules and n entries.
func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			ns := newTestNS(b)
			r, ctx := ns.runner(ModeNFT), context.Background()
			rs := benchRuleset(n)
			if err := r.Apply(ctx, []Ruleset{*rs}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if d, err := r.Diff(ctx, rs); err != nil || len(d) != 0 {
					b.Fatalf("Diff = %q, %v", d, err)
				}
			}
		})
	}
}

// BenchmarkReadMembers measures what a sync that grows existing sets pays
// first to read their members (readMembers): the 10 sets of benchRuleset(n),
// n entries in all, over netlink from inside the namespace, and with one
// `ipset save` through `ip netns exec` (the fallback, which also dumps every
// other set on the node).
func BenchmarkReadMembers(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, via := range []string{"netlink", "save"} {
			b.Run(fmt.Sprintf("entries=%d/%s", n, via), func(b *testing.B) {
				ns := newTestNS(b)
				r, ctx := ns.runner(ModeNFT), context.Background()
				rs := benchRuleset(n)
				if err := r.Apply(ctx, []Ruleset{*rs}); err != nil {
					b.Fatal(err)
				}
				existing := make(map[string]SetInfo)
				for _, s := range rs.Sets {
					existing[s.Name] = SetInfo{Type: s.Type, Family: s.Family}
				}
				if via == "netlink" {
					enterNS(b, ns)
					r = &Runner{Mode: ModeNFT}
				}
				for b.Loop() {
					got, err := r.readMembers(ctx, rs.Sets, existing)
					if err != nil || len(got) != len(rs.Sets) {
						b.Fatalf("readMembers = %d sets, %v", len(got), err)
					}
				}
			})
		}
	}
}

// BenchmarkApplySetChange measures a sync after a change that touches sets
// only (a pod joins `changed` of the 10 sets of benchRuleset(10000), 1000
// members each), alternating with the sync that undoes it, from inside the
// namespace as the agent runs (netlink for reads and no `ip netns exec`).
func BenchmarkApplySetChange(b *testing.B) {
	for _, changed := range []int{1, 10} {
		b.Run(fmt.Sprintf("rules=10000/changed-sets=%d", changed), func(b *testing.B) {
			ns := newTestNS(b)
			enterNS(b, ns)
			r, ctx := &Runner{Mode: ModeNFT}, context.Background()
			a, c := benchRuleset(10000), benchRuleset(10000)
			for i := 0; i < changed; i++ {
				c.Sets[i].Members = append(c.Sets[i].Members, Member{Entry: fmt.Sprintf("10.255.0.%d", i+1)})
			}
			if err := r.Apply(ctx, []Ruleset{*a}); err != nil {
				b.Fatal(err)
			}
			next := []*Ruleset{c, a}
			i := 0
			for b.Loop() {
				if err := r.Apply(ctx, []Ruleset{*next[i%2]}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
