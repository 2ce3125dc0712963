package ipt

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The expected lines below are what `iptables-save -t filter` (1.8.9, nft
// and legacy) printed for the same rules added by hand in a throwaway
// namespace; TestKernelReadBack checks them against the kernel again.
type renderCase struct {
	name  string
	chain string
	rule  Rule
	want  string
}

var renderCases = []renderCase{
	{"bare jump", "NETPOL-A", Rule{Verdict: Jump("NETPOL-B")},
		"-A NETPOL-A -j NETPOL-B"},
	{"goto", "NETPOL-A", Rule{Verdict: Goto("NETPOL-B")},
		"-A NETPOL-A -g NETPOL-B"},
	{"set src", "NETPOL-A", Rule{Matches: []Match{SetMatch{Set: "NETPOL4-P-X", Dir: Src}}, Verdict: Jump("ACCEPT")},
		"-A NETPOL-A -m set --match-set NETPOL4-P-X src -j ACCEPT"},
	{"set dst,dst", "NETPOL-A", Rule{Matches: []Match{SetMatch{Set: "NETPOL4-N-X", Dir: DstDst}}, Verdict: Jump("RETURN")},
		"-A NETPOL-A -m set --match-set NETPOL4-N-X dst,dst -j RETURN"},
	{"single port", "NETPOL-A", Rule{Matches: []Match{Protocol("tcp"), DPorts{Proto: "tcp", Ports: []PortRange{{First: 80}}}}, Verdict: Jump("ACCEPT")},
		"-A NETPOL-A -p tcp -m tcp --dport 80 -j ACCEPT"},
	{"single port upper case udp", "NETPOL-A", Rule{Matches: []Match{Protocol("UDP"), DPorts{Proto: "UDP", Ports: []PortRange{{First: 53, Last: 53}}}}, Verdict: Jump("ACCEPT")},
		"-A NETPOL-A -p udp -m udp --dport 53 -j ACCEPT"},
	{"single range", "NETPOL-A", Rule{Matches: []Match{Protocol("sctp"), DPorts{Proto: "sctp", Ports: []PortRange{{First: 1000, Last: 2000}}}}, Verdict: Jump("ACCEPT")},
		"-A NETPOL-A -p sctp -m sctp --dport 1000:2000 -j ACCEPT"},
	{"multiport", "NETPOL-A", Rule{Matches: []Match{Protocol("tcp"), DPorts{Proto: "tcp", Ports: []PortRange{{First: 80}, {First: 443, Last: 443}, {First: 1000, Last: 2000}}}}, Verdict: Jump("ACCEPT")},
		"-A NETPOL-A -p tcp -m multiport --dports 80,443,1000:2000 -j ACCEPT"},
	{"protocol hoisted before a set match", "NETPOL-A", Rule{Matches: []Match{SetMatch{Set: "NETPOL4-P-X", Dir: Src}, Protocol("tcp"), DPorts{Proto: "tcp", Ports: []PortRange{{First: 80}}}}, Verdict: Jump("ACCEPT")},
		"-A NETPOL-A -p tcp -m set --match-set NETPOL4-P-X src -m tcp --dport 80 -j ACCEPT"},
	{"physdev goto", "NETPOL-FORWARD", Rule{Matches: []Match{PhysdevBridged{}}, Verdict: Goto("NETPOL-BRIDGED")},
		"-A NETPOL-FORWARD -m physdev --physdev-is-bridged -g NETPOL-BRIDGED"},
	{"ctstate reordered", "NETPOL-A", Rule{Matches: []Match{CTState{"ESTABLISHED", "related"}}, Verdict: Jump("RETURN")},
		"-A NETPOL-A -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"},
	{"ctstate all", "NETPOL-A", Rule{Matches: []Match{CTState{"DNAT", "SNAT", "UNTRACKED", "ESTABLISHED", "RELATED", "NEW", "INVALID"}}, Verdict: Jump("ACCEPT")},
		"-A NETPOL-A -m conntrack --ctstate INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED,SNAT,DNAT -j ACCEPT"},
	{"mark with mask", "NETPOL-A", Rule{Matches: []Match{Mark("0x10000/0x10000")}, Verdict: Jump("RETURN")},
		"-A NETPOL-A -m mark --mark 0x10000/0x10000 -j RETURN"},
	{"mark decimal, full mask dropped", "NETPOL-A", Rule{Matches: []Match{Mark("16/0xffffffff")}, Verdict: Jump("RETURN")},
		"-A NETPOL-A -m mark --mark 0x10 -j RETURN"},
	{"set-xmark", "NETPOL-ALLOW", Rule{Verdict: Verdict{Target: "MARK", SetMark: "0x10000/0x10000"}},
		"-A NETPOL-ALLOW -j MARK --set-xmark 0x10000/0x10000"},
	{"set-xmark clear", "NETPOL-PASS", Rule{Verdict: Verdict{Target: "MARK", SetMark: "0x0/0x10000"}},
		"-A NETPOL-PASS -j MARK --set-xmark 0x0/0x10000"},
	{"set-xmark default mask", "NETPOL-A", Rule{Verdict: Verdict{Target: "MARK", SetMark: "0x10000"}},
		"-A NETPOL-A -j MARK --set-xmark 0x10000/0xffffffff"},
	{"plain comment", "NETPOL-A", Rule{Comment: "simple_word-1", Verdict: Jump("ACCEPT")},
		"-A NETPOL-A -m comment --comment simple_word-1 -j ACCEPT"},
	{"comment with space", "NETPOL-A", Rule{Comment: "ns/name policy", Verdict: Jump("ACCEPT")},
		`-A NETPOL-A -m comment --comment "ns/name policy" -j ACCEPT`},
	{"comment punctuation is quoted", "NETPOL-A", Rule{Comment: "a=b:c,d.e", Verdict: Jump("ACCEPT")},
		`-A NETPOL-A -m comment --comment "a=b:c,d.e" -j ACCEPT`},
	{"comment escapes", "NETPOL-A", Rule{Comment: `has "quote" and \back it's`, Verdict: Jump("ACCEPT")},
		`-A NETPOL-A -m comment --comment "has \"quote\" and \\back it\'s" -j ACCEPT`},
	{"comment control chars stripped", "NETPOL-A", Rule{Comment: "two\nlines\tand\x00nul", Verdict: Jump("ACCEPT")},
		`-A NETPOL-A -m comment --comment twolinesandnul -j ACCEPT`},
	{"comment after matches", "NETPOL-A", Rule{Matches: []Match{Protocol("tcp"), DPorts{Proto: "tcp", Ports: []PortRange{{First: 80}}}}, Comment: "x y", Verdict: Jump("ACCEPT")},
		`-A NETPOL-A -p tcp -m tcp --dport 80 -m comment --comment "x y" -j ACCEPT`},
	{"limit, default burst, nflog", "NETPOL-A", Rule{Matches: []Match{Limit{PerSecond: 10, Burst: 5}}, Comment: "x y", Verdict: NFLOG(2500, "netpol-I-drop-nopolicy-ABC")},
		`-A NETPOL-A -m limit --limit 10/sec -m comment --comment "x y" -j NFLOG --nflog-prefix netpol-I-drop-nopolicy-ABC --nflog-group 2500`},
	{"limit burst, nflog group 0", "NETPOL-A", Rule{Matches: []Match{Limit{PerSecond: 1, Burst: 10000}}, Verdict: NFLOG(0, "netpol-E-drop-unknown")},
		"-A NETPOL-A -m limit --limit 1/sec --limit-burst 10000 -j NFLOG --nflog-prefix netpol-E-drop-unknown"},
	{"limit rate as the kernel keeps it", "NETPOL-A", Rule{Matches: []Match{Limit{PerSecond: 3000, Burst: 20}}, Verdict: NFLOG(65535, "")},
		"-A NETPOL-A -m limit --limit 3333/sec --limit-burst 20 -j NFLOG --nflog-group 65535"},
	{"limit 7/sec", "NETPOL-A", Rule{Matches: []Match{Limit{PerSecond: 7, Burst: 5}}, Verdict: NFLOG(1, "p")},
		"-A NETPOL-A -m limit --limit 7/sec -j NFLOG --nflog-prefix p --nflog-group 1"},
	{"hook", "FORWARD", Rule{Comment: "netpol: NetworkPolicy enforcement", Verdict: Jump("NETPOL-FORWARD")},
		`-A FORWARD -m comment --comment "netpol: NetworkPolicy enforcement" -j NETPOL-FORWARD`},
}

func TestRenderRule(t *testing.T) {
	for _, tt := range renderCases {
		t.Run(tt.name, func(t *testing.T) {
			if got := RenderRule(tt.chain, tt.rule); got != tt.want {
				t.Errorf("RenderRule:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSanitizeCommentTruncates(t *testing.T) {
	long := strings.Repeat("a", 300)
	if got := SanitizeComment(long); got != strings.Repeat("a", 255) {
		t.Errorf("len %d, want 255", len(got))
	}
	// 254 ASCII bytes then a 2-byte rune: the rune would end at byte 256,
	// so it is dropped whole.
	multi := strings.Repeat("a", 254) + "é" + "b"
	if got := SanitizeComment(multi); got != strings.Repeat("a", 254) {
		t.Errorf("got %q (len %d), want 254 a's", got, len(got))
	}
	if got := SanitizeComment("ok\xffbad"); got != "okbad" {
		t.Errorf("invalid UTF-8: got %q", got)
	}
}

func TestQuoteSave(t *testing.T) {
	tests := map[string]string{
		"":         `""`,
		"abc":      "abc",
		"-dash":    "-dash",
		"ünï":      `"ünï"`,
		"a b":      `"a b"`,
		`q"`:       `"q\""`,
		`$x #w;`:   `"$x #w;"`,
		"it's":     `"it\'s"`,
		`back\sl`:  `"back\\sl"`,
		"A_Z-0_9z": "A_Z-0_9z",
	}
	for in, want := range tests {
		if got := QuoteSave(in); got != want {
			t.Errorf("QuoteSave(%q) = %s, want %s", in, got, want)
		}
	}
}

func testRuleset() *Ruleset {
	return &Ruleset{
		Family: IPv4,
		Hooks:  []Hook{{Chain: "FORWARD", Position: 1, Rule: Rule{Comment: "netpol hook", Verdict: Jump("NETPOL-FWD")}}},
		Chains: []Chain{
			{Name: "NETPOL-FWD", Rules: []Rule{
				{Matches: []Match{CTState{"RELATED", "ESTABLISHED"}}, Verdict: Jump("RETURN")},
				{Matches: []Match{SetMatch{Set: "NETPOL4-PEERS", Dir: Src}, Protocol("tcp"), DPorts{Proto: "tcp", Ports: []PortRange{{First: 80}}}}, Comment: "ns/allow web", Verdict: Jump("ACCEPT")},
				{Verdict: Goto("NETPOL-TAIL")},
			}},
			{Name: "NETPOL-TAIL", Rules: []Rule{{Verdict: Jump("DROP")}}},
		},
		Sets: []Set{{Name: "NETPOL4-PEERS", Type: HashIP, Family: IPv4, Members: []Member{{Entry: "10.0.0.1"}, {Entry: "10.0.0.2"}}}},
	}
}

func TestRenderTransaction(t *testing.T) {
	got := string(renderTransaction(testRuleset(), []string{"NETPOL-OLD", "FOREIGN", "NETPOL-TAIL", "NETPOL-OLD"}, nil))
	want := `*filter
:NETPOL-FWD - [0:0]
:NETPOL-TAIL - [0:0]
:NETPOL-OLD - [0:0]
-A NETPOL-FWD -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A NETPOL-FWD -p tcp -m set --match-set NETPOL4-PEERS src -m tcp --dport 80 -m comment --comment "ns/allow web" -j ACCEPT
-A NETPOL-FWD -g NETPOL-TAIL
-A NETPOL-TAIL -j DROP
-X NETPOL-OLD
COMMIT
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("renderTransaction (-want +got):\n%s", diff)
	}
}

func TestRenderTransactionEmpty(t *testing.T) {
	got := string(renderTransaction(&Ruleset{Family: IPv6}, nil, nil))
	if want := "*filter\nCOMMIT\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPlanHooks(t *testing.T) {
	hook := Hook{Chain: "FORWARD", Position: 3, Rule: Rule{Verdict: Jump("NETPOL-FWD")}}
	current := map[BuiltinChain][]string{
		"FORWARD": {"-A FORWARD -j ACCEPT", `-A FORWARD -m comment --comment "-j NETPOL-X" -j NETPOL-OLD`},
		"INPUT":   {"-A INPUT -j NETPOL-OLD", "-A INPUT -j NETPOL-KEEP"},
	}
	got := planHooks([]Hook{hook}, current, map[string]bool{"NETPOL-OLD": true})
	want := []string{
		`-D FORWARD -m comment --comment "-j NETPOL-X" -j NETPOL-OLD`,
		"-D INPUT -j NETPOL-OLD",
		// FORWARD has one rule left, so position 3 is clamped to 2.
		"-I FORWARD 2 -j NETPOL-FWD",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("planHooks (-want +got):\n%s", diff)
	}
	present := map[BuiltinChain][]string{"FORWARD": {"-A FORWARD -j NETPOL-FWD"}}
	if got := planHooks([]Hook{hook}, present, nil); len(got) != 0 {
		t.Errorf("present hook: got %q, want nothing", got)
	}
	first := Hook{Chain: "FORWARD", Position: 1, Rule: Rule{Verdict: Jump("NETPOL-FWD")}}
	pushed := map[BuiltinChain][]string{"FORWARD": {"-A FORWARD -j ACCEPT", "-A FORWARD -j NETPOL-FWD"}}
	want = []string{"-D FORWARD -j NETPOL-FWD", "-I FORWARD 1 -j NETPOL-FWD"}
	if diff := cmp.Diff(want, planHooks([]Hook{first}, pushed, nil)); diff != "" {
		t.Errorf("a hook pushed down by a foreign rule must move back (-want +got):\n%s", diff)
	}
}
