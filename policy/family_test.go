package policy

import (
	"strings"
	"testing"

	"github.com/netpol/netpol/ipt"
)

// TestIPBlockFamilies: an ipBlock matches traffic of its own family only,
// /0 of either family is split into the /1 halves hash:net can hold, and an
// except that is one of those halves carves it out (nomatch) instead of
// being lost as a duplicate of it.
func TestIPBlockFamilies(t *testing.T) {
	c := compileWorld(t, `
metadata: {name: blocks, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{ipBlock: {cidr: "::/0", except: ["8000::/1", "fd00::3/128"]}}]
    ports: [{port: 80}]
  - from: [{ipBlock: {cidr: "0.0.0.0/0", except: ["0.0.0.0/1"]}}]
    ports: [{port: 81}]
  egress:
  - to: [{ipBlock: {cidr: "10.244.1.0/24"}}]
`)
	runProbes(t, c, []probe{
		{"v6 in ::/1 to db:80", tcp("::5", "fd00::2", 80), true},
		{"v6 in the excepted half 8000::/1 to db:80", tcp("fd00::9", "fd00::2", 80), false},
		{"v6 from frontend (excepted /128) to db:80", tcp("fd00::3", "fd00::2", 80), false},
		{"v6 to db:81 (only the v4 block has 81)", tcp("::5", "fd00::2", 81), false},
		{"v4 in the excepted half 0.0.0.0/1 to db:81", tcp("10.244.1.3", "10.244.1.2", 81), false},
		{"v4 in 128.0.0.0/1 to db:81", tcp("172.17.0.5", "10.244.1.2", 81), true},
		{"v4 to db:80 (only the v6 block has 80)", tcp("172.17.0.5", "10.244.1.2", 80), false},
		{"db egress over v4 into its block", tcp("10.244.1.2", "10.244.1.3", 80), true},
		// db is dual-stack: a policy whose egress peers are all IPv4 leaves
		// its IPv6 egress isolated, denied.
		{"db egress over v6 (no v6 peer)", tcp("fd00::2", "fd00::3", 80), false},
	})
	for _, rs := range c.Rulesets {
		for _, s := range rs.Sets {
			if s.Type != ipt.HashNet {
				continue
			}
			seen := map[string]bool{}
			for _, m := range s.Members {
				if fam, ok := ipFamily(m.Entry); !ok || fam != rs.Family {
					t.Errorf("%s set %s holds %q", rs.Family, s.Name, m.Entry)
				}
				if seen[m.Entry] {
					t.Errorf("set %s holds %q twice", s.Name, m.Entry)
				}
				seen[m.Entry] = true
			}
		}
	}
}

// TestTraceRefusesMixedFamilies: a packet has one family; a trace of an
// IPv4 source to an IPv6 destination is an error, not a verdict.
func TestTraceRefusesMixedFamilies(t *testing.T) {
	c := compileWorld(t, seedPolicy)
	if _, err := Trace(c, tcp("10.244.1.3", "fd00::2", 80)); err == nil {
		t.Error("Trace(IPv4 -> IPv6) = nil error")
	}
}

// TestNonCanonicalAddresses: a remote pod's IPv6 status IP written in a
// non-canonical form, and a record's IPv4-mapped address, reach the sets in
// the form the kernel prints, so a named port (hash:ip,port) matches, and
// the compiled rules agree with the evaluator.
func TestNonCanonicalAddresses(t *testing.T) {
	pods := append([]Pod{{Namespace: "proj", Name: "r6", Node: "n2", Labels: map[string]string{"role": "db"},
		IPs:   []string{"FD00:0:0::7"},
		Ports: []NamedPort{{Name: "redis", Protocol: "TCP", Port: 6379}}}}, testPods...)
	atts := append([]Attachment(nil), testAtts...)
	atts[2].IPs = []string{"::ffff:10.244.1.4"} // client
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: pods,
		Policies: parsePolicies(t, `
metadata: {name: egress, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: redis}]}]
`)}
	c, err := Compile(s, atts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to string
		want     bool
	}{
		{"fd00::2", "fd00::7", true},
		{"10.244.1.4", "10.244.1.2", true},
		{"10.244.1.4", "10.244.1.3", false},
	} {
		got := trace(t, c, tcp(tc.from, tc.to, 6379))
		want := Evaluate(s, atts, Connection{From: tc.from, To: tc.to, Protocol: "TCP", Port: 6379})
		if got != tc.want || want.Allowed != tc.want {
			t.Errorf("%s -> %s:6379: compiled %v, evaluator %v, want %v", tc.from, tc.to, got, want.Allowed, tc.want)
		}
	}
	for _, rs := range c.Rulesets {
		for _, st := range rs.Sets {
			for _, m := range st.Members {
				if strings.ContainsAny(m.Entry, "FG") || strings.Contains(m.Entry, "::ffff:") || strings.Contains(m.Entry, ":0:0::") {
					t.Errorf("set %s holds %q raw", st.Name, m.Entry)
				}
			}
		}
	}
}
