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

// dualStackPolicy admits, into every pod of default, TCP 6000-6010 and the
// named port redis from anywhere in IPv6 but fe80::/10, and anything from
// 10.0.0.0/8; it lets db send only to pods labelled role=client, in any namespace.
const dualStackPolicy = `
metadata: {name: dual, namespace: default}
spec:
  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: "::/0", except: ["fe80::/10"]}}]
    ports: [{port: 6000, endPort: 6010}, {port: redis}]
  - from: [{ipBlock: {cidr: 10.0.0.0/8}}]
---
metadata: {name: db-egress, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}]}]
`

// dualStackWorld: db is dual-stack (redis 6379), v6 is IPv6-only (redis
// 7000), client IPv4-only, and remote6 an IPv6-only pod of node n2 in
// alice (no policy there) with role=client.
func dualStackWorld(t *testing.T) (*Snapshot, []Attachment) {
	pods := []Pod{
		{Namespace: "default", Name: "db", Node: "n1", Labels: map[string]string{"role": "db"},
			Ports: []NamedPort{{Name: "redis", Protocol: "TCP", Port: 6379}}},
		{Namespace: "default", Name: "v6", Node: "n1", Labels: map[string]string{"role": "v6"},
			Ports: []NamedPort{{Name: "redis", Protocol: "TCP", Port: 7000}}},
		{Namespace: "default", Name: "client", Node: "n1", Labels: map[string]string{"role": "client"}},
		{Namespace: "alice", Name: "remote6", Node: "n2", Labels: map[string]string{"role": "client"}, IPs: []string{"fd00:2::7"}},
	}
	atts := []Attachment{
		{ContainerID: "c-db", Namespace: "default", Name: "db", IPs: []string{"10.244.1.2", "fd00::2"}},
		{ContainerID: "c-v6", Namespace: "default", Name: "v6", IPs: []string{"fd00::6"}},
		{ContainerID: "c-client", Namespace: "default", Name: "client", IPs: []string{"10.244.1.4"}},
	}
	return &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: pods,
		Policies: parsePolicies(t, strings.Split(dualStackPolicy, "---")...)}, atts
}

func compileDualStack(t *testing.T) *Compiled {
	s, atts := dualStackWorld(t)
	if err := ValidateSnapshot(s); err != nil {
		t.Fatal(err)
	}
	c, err := Compile(s, atts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDualStack probes the dual-stack world: each family's peers, named
// ports and ranges in both families' sets, a pod's family without peers
// denied, and IPv6 link-local and multicast addresses (in no set) denied,
// on both packet paths, with the evaluator agreeing.
func TestDualStack(t *testing.T) {
	s, atts := dualStackWorld(t)
	c := compileDualStack(t)
	probes := []probe{
		{"v6 pod to db over v6, redis (6379 on db)", tcp("fd00::6", "fd00::2", 6379), true},
		{"db to v6 pod, redis (7000 on v6) - db egress allows clients only", tcp("fd00::2", "fd00::6", 7000), false},
		{"remote v6 to v6 pod, redis 7000", tcp("fd00:2::7", "fd00::6", 7000), true},
		{"remote v6 to v6 pod, 6379 (not its redis)", tcp("fd00:2::7", "fd00::6", 6379), false},
		{"remote v6 to db over v6, range 6005", tcp("fd00:2::7", "fd00::2", 6005), true},
		{"remote v6 to db over v6, 6011 past the range", tcp("fd00:2::7", "fd00::2", 6011), false},
		{"fe80::/10 excepted", tcp("fe80::9", "fd00::2", 6379), false},
		{"v4 client to db over v4 (10.0.0.0/8)", tcp("10.244.1.4", "10.244.1.2", 80), true},
		{"v4 outside 10/8 to db, redis", tcp("172.17.0.1", "10.244.1.2", 6379), false},
		{"db egress to client over v4", tcp("10.244.1.2", "10.244.1.4", 80), true},
		{"db egress to remote6 client over v6", tcp("fd00::2", "fd00:2::7", 80), true},
		{"db egress to a v6 non-pod", tcp("fd00::2", "fd00::99", 80), false},
		{"db egress to a v4 non-pod", tcp("10.244.1.2", "10.244.1.99", 80), false},
		{"v6 pod to db's link-local address", tcp("fe80::6", "fe80::2", 6379), false},
		{"client (not isolated) over link-local to a non-pod", tcp("fe80::4", "fe80::99", 80), false},
		{"link-local source to db's global address", tcp("fe80::6", "fd00::2", 6379), false},
		{"v6 pod (egress not isolated) to an IPv6 multicast group", udp("fd00::6", "ff02::1", 80), false},
	}
	runProbes(t, c, probes)
	for _, pr := range probes {
		v := Evaluate(s, atts, Connection{From: pr.pkt.Src, To: pr.pkt.Dst, Protocol: "TCP", Port: pr.pkt.DPort})
		if v.Allowed != pr.expected {
			t.Errorf("%s: evaluator says %v, want %v", pr.name, v.Allowed, pr.expected)
		}
	}
	ms := c.Index.Pods["default/db"]
	fams := map[ipt.Family]int{}
	for _, m := range ms {
		fams[m.Family]++
	}
	if fams[ipt.IPv4] == 0 || fams[ipt.IPv4] != fams[ipt.IPv6] {
		t.Errorf("dual-stack db's memberships per family: %v (%v)", fams, ms)
	}
}
