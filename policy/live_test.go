package policy

import (
	"testing"

	"github.com/netpol/netpol/ipt"
)

// TestParseRuleRoundTrip reads every rule of compiled rulesets back with
// ipt.ParseRule, as explain --live reads the kernel's: each must render to
// the same line, and the read-back ruleset must trace as the compiled one.
func TestParseRuleRoundTrip(t *testing.T) {
	worlds := map[string]*Compiled{
		"seed":        compileWorld(t, seedPolicy),
		"named-ports": compileNamedPorts(t),
		"unknown":     compileUnknownPods(t),
	}
	for name, c := range worlds {
		for _, rs := range c.Rulesets {
			back := ipt.Ruleset{Family: rs.Family, Sets: rs.Sets}
			for _, ch := range rs.Chains {
				out := ipt.Chain{Name: ch.Name}
				for _, r := range ch.Rules {
					line := ipt.RenderRule(ch.Name, r)
					chain, got, err := ipt.ParseRule(line)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if again := ipt.RenderRule(chain, got); chain != ch.Name || again != line {
						t.Errorf("%s: read back as\n%s\nwant\n%s", name, again, line)
					}
					out.Rules = append(out.Rules, got)
				}
				back.Chains = append(back.Chains, out)
			}
			for _, pk := range []Packet{tcp(fe, db, 6379), tcp(client, db, 6379), tcp(db, fe, 80), tcp(ac, fe, 80)} {
				if rs.Family != ipt.IPv4 {
					continue
				}
				want, err1 := TraceRuleset(&rs, pk)
				got, err2 := TraceRuleset(&back, pk)
				if err1 != nil || err2 != nil || want.Allowed != got.Allowed || len(want.Rules) != len(got.Rules) {
					t.Errorf("%s %+v: compiled %v %v, read back %v %v", name, pk, want.Allowed, err1, got.Allowed, err2)
				}
			}
		}
	}
	for _, bad := range []string{"-A X -m owner --uid-owner 0 -j DROP", "-A X -j LOG --log-prefix x", "-I X -j DROP", "-A X -m bpf --bytecode \"1,6 0 0 1\" -j RETURN"} {
		if _, _, err := ipt.ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted a rule netpol does not write", bad)
		}
	}
}
