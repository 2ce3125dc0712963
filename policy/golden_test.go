package policy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/ipt"
)

// update rewrites the golden files instead of comparing with them:
//
//	go test ./policy/ -run TestGolden -update
//
// and the diff of testdata/ is then reviewed like code.
var update = flag.Bool("update", false, "rewrite policy/testdata/*.golden from the compiler's output")

// TestGolden compiles a few named worlds and compares the rendered rulesets
// (the iptables-restore text of our chains, the FORWARD hook, and every set
// with its members) with testdata/<world>.golden.
func TestGolden(t *testing.T) {
	worlds := []struct {
		name    string
		compile func(t *testing.T) *Compiled
	}{
		{"seed-policy", func(t *testing.T) *Compiled { return compileWorld(t, seedPolicy) }},
		{"peers-or", func(t *testing.T) *Compiled { return compileWorld(t, orPeers) }},
		{"peers-and", func(t *testing.T) *Compiled { return compileWorld(t, andPeers) }},
		{"named-ports", compileNamedPorts},
		{"fail-closed-bootstrap", func(t *testing.T) *Compiled {
			c, err := CompileUnknown(testAtts[:3], DefaultDropLog())
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"fail-closed-unknown-pods", compileUnknownPods},
		{"dual-stack", compileDualStack},
	}
	for _, w := range worlds {
		t.Run(w.name, func(t *testing.T) {
			got := renderCompiled(w.compile(t))
			path := filepath.Join("testdata", w.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if d := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got, "\n")); d != "" {
				t.Errorf("%s differs (-golden +compiled); if the change is intended, rerun with -update and review the diff:\n%s", path, d)
			}
		})
	}
}

const orPeers = `
metadata: {name: or, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {user: alice}}
    - podSelector: {matchLabels: {role: client}}
`

const andPeers = `
metadata: {name: and, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {user: alice}}
      podSelector: {matchLabels: {role: client}}
`

// compileNamedPorts: port "redis" is 6379 on db and 7000 on cache; a policy
// on every pod of default admits it from anywhere.
func compileNamedPorts(t *testing.T) *Compiled {
	pods := append([]Pod{{Namespace: "default", Name: "cache", Node: "n1", Labels: map[string]string{"role": "cache"},
		Ports: []NamedPort{{Name: "redis", Protocol: "TCP", Port: 7000}}}}, testPods...)
	atts := append([]Attachment{{ContainerID: "c-cache", Namespace: "default", Name: "cache", IPs: []string{"10.244.1.8"}}}, testAtts...)
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: pods,
		Policies: parsePolicies(t, `
metadata: {name: redis, namespace: default}
spec:
  podSelector: {}
  ingress: [{ports: [{port: redis}]}]
`)}
	c, err := Compile(s, atts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// compileUnknownPods: the seed policy, and two recorded pods the snapshot
// does not know, one in default (which has a policy: denied) and one in
// alice (no policy: left alone).
func compileUnknownPods(t *testing.T) *Compiled {
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: testPods,
		Policies: parsePolicies(t, seedPolicy)}
	atts := append([]Attachment{
		{ContainerID: "c-new", Namespace: "default", Name: "new", IPs: []string{"10.244.1.50"}},
		{ContainerID: "c-new2", Namespace: "alice", Name: "new2", IPs: []string{"10.244.1.51"}},
	}, testAtts...)
	c, err := Compile(s, atts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// renderCompiled renders each family's ruleset: the restore text of our
// chains (as ipt.RenderRule writes each rule), the hooks as the -I lines
// Apply inserts, and the sets as ipset create/add lines.
func renderCompiled(c *Compiled) string {
	var b strings.Builder
	for _, rs := range c.Rulesets {
		fmt.Fprintf(&b, "# %s filter table\n*filter\n", rs.Family)
		for _, ch := range rs.Chains {
			fmt.Fprintf(&b, ":%s - [0:0]\n", ch.Name)
		}
		for _, h := range rs.Hooks {
			rule := strings.TrimPrefix(ipt.RenderRule(string(h.Chain), h.Rule), "-A "+string(h.Chain))
			fmt.Fprintf(&b, "-I %s %d%s\n", h.Chain, h.Position, rule)
		}
		for _, ch := range rs.Chains {
			for _, r := range ch.Rules {
				b.WriteString(ipt.RenderRule(ch.Name, r) + "\n")
			}
		}
		b.WriteString("COMMIT\n")
		fmt.Fprintf(&b, "# %s sets\n", rs.Family)
		for _, s := range rs.Sets {
			fmt.Fprintf(&b, "create %s %s family %s # %s\n", s.Name, s.Type, s.Family.SetFamily(), s.Comment)
			for _, m := range s.Members {
				nomatch := ""
				if m.NoMatch {
					nomatch = " nomatch"
				}
				fmt.Fprintf(&b, "add %s %s%s\n", s.Name, m.Entry, nomatch)
			}
		}
	}
	return b.String()
}
