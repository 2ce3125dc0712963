package integration

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// walkVariants is row 9 (make perf ROWS=9; not among the rows measured by
// default): row 1's connection on the netpol node with the walk of its two
// group chains rewritten by hand, to measure what a cheaper walk would be
// worth before building it. Each round measures, in turn (the order
// rotating round by round), the bridge node, the floor and the netpol node
// with each variant restored into it:
//
//	installed  the rules as the agent installed them
//	inline     the client's egress and the server's ingress group chain
//	           hold their policies' rules inline: no pending mark, no jump
//	           to a policy chain, an allowing rule RETURNs at once
//	direct     the dispatch cut to one group-set test after the DENY test
//	           (what an O(1) dispatch by a value-carrying map would walk:
//	           the tree, the isolated test and the leaf gone)
//	inline+direct  both
//	one lookup the group-set test put first, before the DENY test: one
//	           lookup a direction, what a native nftables verdict map
//	           (address to group chain, DENY folded in) would cost
//	hooks alone  NETPOL-BRIDGED emptied: the packet meets netpol's hook
//	           rules (conntrack, hairpin, physdev) and no check at all
//
// Every variant but the last keeps the same verdict for the row's pair (the
// allowing rules are the same), but none is a ruleset netpol could
// install: direct and one lookup only hold for these two pods, and hooks
// alone checks nothing. The rows are each variant
// against the bridge node, as row 1 (9a is row 1 itself, measured in these
// rounds); and 9f the floor against the bridge.
func (p *pfBench) walkVariants(b *testing.B) []pfRow {
	b.Helper()
	ctx := context.Background()
	n := p.netpol.node
	save, err := n.IPTablesSave(ctx)
	if err != nil {
		b.Fatal(err)
	}
	sets, err := n.Exec(ctx, "ipset", "save")
	if err != nil {
		b.Fatalf("ipset save: %v", err)
	}
	ge := pfGroupOf(string(sets), "NETPOL4-GE-", p.client[0].IP)
	gi := pfGroupOf(string(sets), "NETPOL4-GI-", p.server[0].IP)
	if ge == "" || gi == "" || chainRules(save, "NETPOL-GE-"+ge) == nil || chainRules(save, "NETPOL-GI-"+gi) == nil {
		b.Fatalf("row 9: no group chains for %s -> %s (egress %q, ingress %q)", p.client[0].IP, p.server[0].IP, ge, gi)
	}
	geChain, giChain := "NETPOL-GE-"+ge, "NETPOL-GI-"+gi
	installed := map[string][]string{}
	for _, c := range []string{geChain, giChain, "NETPOL-EGRESS", "NETPOL-INGRESS", "NETPOL-BRIDGED"} {
		installed[c] = chainRules(save, c)
	}
	with := func(base map[string][]string, edits map[string][]string) map[string][]string {
		m := map[string][]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range edits {
			m[k] = v
		}
		return m
	}
	// dispatch puts one group-set test at index at of each direction's chain.
	dispatch := func(at int) map[string][]string {
		eg, ig := installed["NETPOL-EGRESS"], installed["NETPOL-INGRESS"]
		return map[string][]string{
			"NETPOL-EGRESS":  slices.Insert(slices.Clone(eg), at, "-A NETPOL-EGRESS -m set --match-set NETPOL4-GE-"+ge+" src -g "+geChain),
			"NETPOL-INGRESS": slices.Insert(slices.Clone(ig), at, "-A NETPOL-INGRESS -m set --match-set NETPOL4-GI-"+gi+" dst -g "+giChain),
		}
	}
	inline := map[string][]string{geChain: pfInlineGroup(save, geChain), giChain: pfInlineGroup(save, giChain)}
	variants := []struct {
		name   string
		chains map[string][]string
	}{
		{"9a installed", installed},
		{"9b inline", with(installed, inline)},
		{"9c direct", with(installed, dispatch(1))},
		{"9d inline+direct", with(with(installed, inline), dispatch(1))},
		{"9e one lookup", with(installed, dispatch(0))},
		{"9g hooks alone", with(installed, map[string][]string{"NETPOL-BRIDGED": nil})},
	}
	restore := func(m map[string][]string) {
		var in strings.Builder
		in.WriteString("*filter\n")
		for name := range m {
			fmt.Fprintf(&in, ":%s - [0:0]\n", name) // with --noflush: flushes the chain
		}
		for _, rules := range m {
			for _, r := range rules {
				in.WriteString(r + "\n")
			}
		}
		in.WriteString("COMMIT\n")
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.NetNS, "iptables-restore", "-w", "--noflush")
		cmd.Stdin = strings.NewReader(in.String())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("row 9: iptables-restore: %v\n%s", err, stderr.String())
		}
	}
	defer restore(installed)
	rates := make([][]float64, len(variants)+2) // variants, then the floor, then the bridge
	runs := len(rates)
	for i := range 3 * pfPairs() {
		for o := range runs {
			k := (i + o) % runs
			j := 0 // the netpol node, with variant k
			switch {
			case k < len(variants):
				restore(variants[k].chains)
			case k == len(variants):
				j = 2 // the floor
			default:
				j = 1 // the bridge node
			}
			r, err := p.pfRate("connect", j)
			if err != nil {
				b.Fatalf("row 9, %d: %v", k, err)
			}
			rates[k] = append(rates[k], r)
		}
	}
	bridge := rates[len(variants)+1]
	var rows []pfRow
	for k, v := range variants {
		rows = append(rows, pfRow{name: v.name + ", walk cut by hand, vs bridge", unit: "conn/s", side: rates[k], base: bridge})
	}
	rows = append(rows, pfRow{name: "9f the floor vs bridge", unit: "conn/s", side: rates[len(variants)], base: bridge})
	p.log.add("row 9: groups %s (egress of %s) and %s (ingress of %s)", geChain, p.client[0].Label(), giChain, p.server[0].Label())
	return rows
}

// pfGroupOf is the suffix of the group set of prefix (NETPOL4-GE- or
// NETPOL4-GI-) that holds ip in an ipset save output, or "".
func pfGroupOf(save, prefix, ip string) string {
	for _, l := range strings.Split(save, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "add" && strings.HasPrefix(f[1], prefix) && f[2] == ip {
			return strings.TrimPrefix(f[1], prefix)
		}
	}
	return ""
}

// pfInlineGroup is group chain g of an iptables-save output with each policy jump replaced by that
// policy chain's rules (an allowing rule RETURNs from the group chain at
// once) and the pending mark's rules left out; its drop rules stay last.
func pfInlineGroup(save, g string) []string {
	var out []string
	for _, r := range chainRules(save, g) {
		target := ""
		f := strings.Fields(r)
		for i := len(f) - 2; i >= 0; i-- {
			if f[i] == "-j" || f[i] == "-g" {
				target = f[i+1]
				break
			}
		}
		switch {
		case target == "MARK" || strings.Contains(r, "--mark 0x0/0x10000"):
			// the pending mark, set on entry and tested on the way out
		case strings.HasPrefix(target, "NETPOL-E-") || strings.HasPrefix(target, "NETPOL-I-"):
			for _, pr := range chainRules(save, target) {
				pr = strings.Replace(pr, "-A "+target+" ", "-A "+g+" ", 1)
				out = append(out, strings.Replace(pr, "-g NETPOL-ALLOW", "-j RETURN", 1))
			}
		default:
			out = append(out, r)
		}
	}
	return out
}
