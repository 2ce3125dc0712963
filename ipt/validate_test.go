package ipt

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateAccepts(t *testing.T) {
	if err := Validate(testRuleset()); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejects(t *testing.T) {
	long := "NETPOL-" + strings.Repeat("X", 22) // 29 characters
	tcp80 := DPorts{Proto: "tcp", Ports: []PortRange{{First: 80}}}
	tests := []struct {
		name   string
		mutate func(rs *Ruleset)
		want   string // the error must name this
	}{
		{"chain too long", func(rs *Ruleset) { rs.Chains[1].Name = long }, long},
		{"chain not ours", func(rs *Ruleset) { rs.Chains[1].Name = "FOO" }, `"FOO"`},
		{"chain twice", func(rs *Ruleset) { rs.Chains[1].Name = "NETPOL-FWD" }, "NETPOL-FWD declared twice"},
		{"chain name with space", func(rs *Ruleset) { rs.Chains[1].Name = "NETPOL X" }, `"NETPOL X"`},
		{"ports without protocol", func(rs *Ruleset) {
			rs.Chains[1].Rules[0].Matches = []Match{tcp80}
		}, "chain NETPOL-TAIL rule 1"},
		{"ports of another protocol", func(rs *Ruleset) {
			rs.Chains[1].Rules[0].Matches = []Match{Protocol("udp"), tcp80}
		}, "protocol"},
		{"port out of range", func(rs *Ruleset) {
			rs.Chains[1].Rules[0].Matches = []Match{Protocol("tcp"), DPorts{Proto: "tcp", Ports: []PortRange{{First: 70000}}}}
		}, "70000"},
		{"too many multiport slots", func(rs *Ruleset) {
			ports := make([]PortRange, 8)
			for i := range ports {
				ports[i] = PortRange{First: int32(100 + 10*i), Last: int32(105 + 10*i)}
			}
			rs.Chains[1].Rules[0].Matches = []Match{Protocol("tcp"), DPorts{Proto: "tcp", Ports: ports}}
		}, "16 multiport slots"},
		{"bad mark", func(rs *Ruleset) { rs.Chains[1].Rules[0].Matches = []Match{Mark("x")} }, `"x"`},
		{"bad set-xmark", func(rs *Ruleset) { rs.Chains[1].Rules[0].Verdict = Verdict{Target: "MARK"} }, "MARK"},
		{"injected set name", func(rs *Ruleset) {
			rs.Chains[1].Rules[0].Matches = []Match{SetMatch{Set: "X src -j ACCEPT\n-A", Dir: Src}}
		}, "match 1"},
		{"bad dir", func(rs *Ruleset) { rs.Chains[1].Rules[0].Matches = []Match{SetMatch{Set: "NETPOL4-X", Dir: "up"}} }, `"up"`},
		{"hook target not ours", func(rs *Ruleset) { rs.Hooks[0].Rule.Verdict = Jump("ACCEPT") }, "ACCEPT"},
		{"hook in our chain", func(rs *Ruleset) { rs.Hooks[0].Chain = "NETPOL-FWD" }, "NETPOL-FWD"},
		{"set family", func(rs *Ruleset) { rs.Sets[0].Family = IPv6 }, "NETPOL4-PEERS"},
		{"set type", func(rs *Ruleset) { rs.Sets[0].Type = "bitmap:port" }, "bitmap:port"},
		{"reject target", func(rs *Ruleset) { rs.Chains[1].Rules[0].Verdict = Jump("REJECT") }, "REJECT"},
		{"bad family", func(rs *Ruleset) { rs.Family = 5 }, "family 5"},
		{"IPv6 member in an inet set", func(rs *Ruleset) { rs.Sets[0].Members[1].Entry = "fd00::2" }, `"fd00::2" is not an ipv4 address`},
		{"IPv4-mapped member", func(rs *Ruleset) { rs.Sets[0].Members[1].Entry = "::ffff:10.0.0.2" }, `"::ffff:10.0.0.2" is an IPv4-mapped`},
		{"IPv4-mapped member of an inet6 set", func(rs *Ruleset) {
			*rs = *testRuleset6()
			rs.Sets[0].Members[2].Entry = "::ffff:10.0.0.0/120"
		}, `"::ffff:10.0.0.0/120" is an IPv4-mapped`},
		{"IPv4 member in an inet6 set", func(rs *Ruleset) {
			*rs = *testRuleset6()
			rs.Sets[0].Members[2].Entry = "10.0.0.0/8"
		}, `"10.0.0.0/8" is not an ipv6 address`},
		{"IPv4-mapped member of hash:ip,port", func(rs *Ruleset) {
			rs.Sets[0].Type = HashIPPort
			rs.Sets[0].Members[1].Entry = "::ffff:10.0.0.2,tcp:80"
		}, "IPv4-mapped"},
		{"member not an address", func(rs *Ruleset) { rs.Sets[0].Members[1].Entry = "host.example" }, `"host.example" is not an address`},
		{"nflog prefix with a space", func(rs *Ruleset) { rs.Chains[1].Rules[0].Verdict = NFLOG(1, "a b") }, `"a b"`},
		{"nflog prefix too long", func(rs *Ruleset) { rs.Chains[1].Rules[0].Verdict = NFLOG(1, strings.Repeat("p", 64)) }, "64 bytes"},
		{"nflog without log", func(rs *Ruleset) { rs.Chains[1].Rules[0].Verdict = Jump(NFLOGTarget) }, "NFLOG"},
		{"limit zero", func(rs *Ruleset) { rs.Chains[1].Rules[0].Matches = []Match{Limit{PerSecond: 0, Burst: 5}} }, "limit 0/sec"},
		{"limit burst too big", func(rs *Ruleset) { rs.Chains[1].Rules[0].Matches = []Match{Limit{PerSecond: 1, Burst: 10001}} }, "burst 10001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := testRuleset()
			tt.mutate(rs)
			err := Validate(rs)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want ErrInvalid naming %s", err, tt.want)
			}
		})
	}
}

func TestStaleToDropRefusesForeign(t *testing.T) {
	got := staleToDrop([]string{"FOO", "NETPOL-A", "NETPOL-A", "NETPOL-KEEP", "NETPOL bad"}, map[string]bool{"NETPOL-KEEP": true})
	if len(got) != 1 || got[0] != "NETPOL-A" {
		t.Errorf("got %q", got)
	}
}

// TestValidateAcceptsMembersOfBothFamilies: hosts, prefixes and
// address,port entries of each family, in their own family's sets.
func TestValidateAcceptsMembersOfBothFamilies(t *testing.T) {
	sets := []Set{
		{Name: "NETPOL4-N", Type: HashNet, Family: IPv4, Members: []Member{{Entry: "0.0.0.0/1"}, {Entry: "10.0.0.1/32", NoMatch: true}}},
		{Name: "NETPOL4-P", Type: HashIPPort, Family: IPv4, Members: []Member{{Entry: "10.0.0.1,udp:53"}, {Entry: "10.0.0.1,80"}}},
	}
	sets6 := []Set{
		{Name: "NETPOL6-N", Type: HashNet, Family: IPv6, Members: []Member{{Entry: "8000::/1"}, {Entry: "fd00::1/128", NoMatch: true}}},
		{Name: "NETPOL6-P", Type: HashIPPort, Family: IPv6, Members: []Member{{Entry: "fd00::1,tcp:65535"}}},
		{Name: "NETPOL6-A", Type: HashIP, Family: IPv6, Members: []Member{{Entry: "fd00::1"}, {Entry: "::a00:1"}}},
	}
	if err := validateSets(sets, IPv4); err != nil {
		t.Error(err)
	}
	if err := validateSets(sets6, IPv6); err != nil {
		t.Error(err)
	}
}

func TestRenderEntriesRefusesIPv4Mapped(t *testing.T) {
	if _, err := renderEntries("add", []Entry{{Set: "NETPOL4-X", Value: "::ffff:10.0.0.1"}}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("renderEntries(::ffff:10.0.0.1) = %v, want ErrInvalid", err)
	}
}
