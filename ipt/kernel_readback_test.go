package ipt

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readBackRuleset puts every renderCase (and comments that need cutting)
// into one ruleset of fam, and returns what iptables-save must print for it:
// chain -> "-A" lines, written by hand in renderCases.
func readBackRuleset(fam Family) (*Ruleset, map[string][]string) {
	rs := &Ruleset{Family: fam, Sets: []Set{
		{Name: "NETPOL4-N-X", Type: HashIPPort, Family: fam},
		{Name: "NETPOL4-P-X", Type: HashIP, Family: fam},
	}}
	want := make(map[string][]string)
	rules := make(map[string][]Rule)
	order := []string{"NETPOL-B", "NETPOL-BRIDGED", "NETPOL-FORWARD"}
	cases := append([]renderCase{
		{"cut comment", "NETPOL-CUT", Rule{Comment: strings.Repeat("a", 300), Verdict: Jump("ACCEPT")},
			"-A NETPOL-CUT -m comment --comment " + strings.Repeat("a", 255) + " -j ACCEPT"},
		{"cut comment on a rune", "NETPOL-CUT", Rule{Comment: strings.Repeat("b", 254) + "éx", Verdict: Jump("ACCEPT")},
			"-A NETPOL-CUT -m comment --comment " + strings.Repeat("b", 254) + " -j ACCEPT"},
		{"utf-8 comment", "NETPOL-CUT", Rule{Comment: "ünï", Verdict: Jump("ACCEPT")},
			`-A NETPOL-CUT -m comment --comment "ünï" -j ACCEPT`},
		{"empty-looking comment", "NETPOL-CUT", Rule{Comment: "\n", Verdict: Jump("ACCEPT")},
			`-A NETPOL-CUT -j ACCEPT`},
	}, renderCases...)
	for _, tc := range cases {
		want[tc.chain] = append(want[tc.chain], tc.want)
		if tc.chain == "FORWARD" {
			rs.Hooks = append(rs.Hooks, Hook{Chain: BuiltinChain(tc.chain), Position: 1, Rule: tc.rule})
			continue
		}
		if _, ok := rules[tc.chain]; !ok && !contains(order, tc.chain) {
			order = append(order, tc.chain)
		}
		rules[tc.chain] = append(rules[tc.chain], tc.rule)
	}
	for _, name := range order {
		rs.Chains = append(rs.Chains, Chain{Name: name, Rules: rules[name]})
	}
	return rs, want
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestKernelReadBack is the proof that RenderRule is canonical: after Apply,
// iptables-save prints exactly the hand-written lines of renderCases, for
// both backends and both families, and Diff finds nothing.
func TestKernelReadBack(t *testing.T) {
	for _, mode := range []Mode{ModeNFT, ModeLegacy} {
		for _, fam := range Families {
			t.Run(string(mode)+"/"+fam.String(), func(t *testing.T) {
				ns := newTestNS(t)
				r := ns.runner(mode)
				ctx := context.Background()
				rs, want := readBackRuleset(fam)
				for round := 1; round <= 2; round++ { // the second Apply rewrites the same
					if err := r.Apply(ctx, []Ruleset{*rs}); err != nil {
						t.Fatalf("Apply round %d: %v", round, err)
					}
					got, declared := ns.filterRules(mode, fam)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("round %d: iptables-save differs from the hand-written lines (-want +got):\n%s", round, diff)
					}
					owned, _ := r.ListChains(ctx, fam)
					if diff := cmp.Diff(rs.ChainNames(), owned, sortStrings); diff != "" {
						t.Errorf("ListChains (-want +got):\n%s\ndeclared: %q", diff, declared)
					}
					if d, err := r.Diff(ctx, rs); err != nil || len(d) != 0 {
						t.Errorf("round %d: Diff = %q, %v; want nothing", round, d, err)
					}
				}
			})
		}
	}
}
