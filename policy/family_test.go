package policy

import (
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
