package policy

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestAudit checks that a namespace in audit, or the whole node, passes
// what its policies would deny, through the rule that says so, and that
// Evaluate agrees (WouldDeny); other namespaces and the fail-closed DENY
// set keep enforcing.
func TestAudit(t *testing.T) {
	audited := slices.Clone(testNamespaces)
	audited[0].Audit = true // default, where seedPolicy isolates db
	atts := append([]Attachment{{ContainerID: "c-new", Namespace: "default", Name: "new", IPs: []string{"10.244.1.50"}}}, testAtts...)
	for _, tt := range []struct {
		name     string
		ns       []Namespace
		nodeWide bool
		audit    bool
	}{
		{"enforced", testNamespaces, false, false},
		{"namespace annotated", audited, false, true},
		{"node-wide --audit", testNamespaces, true, true},
	} {
		s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: tt.ns, Pods: testPods,
			Policies: parsePolicies(t, seedPolicy), Audit: tt.nodeWide}
		c, err := Compile(s, atts)
		if err != nil {
			t.Fatal(err)
		}
		runProbes(t, c, []probe{
			{tt.name + ": client to db:6379 (no rule allows it)", tcp(client, db, 6379), tt.audit},
			{tt.name + ": db to frontend (egress isolated)", tcp(db, fe, 80), tt.audit},
			{tt.name + ": frontend to db:6379 (allowed)", tcp(fe, db, 6379), true},
			{tt.name + ": unknown pod (DENY set) stays denied", tcp("10.244.1.50", fe, 80), false},
		})
		res, err := Trace(c, tcp(client, db, 6379))
		if err != nil {
			t.Fatal(err)
		}
		last := res.Rules[len(res.Rules)-1]
		if want := "ingress would be denied (audit)"; strings.Contains(last, want) != tt.audit {
			t.Errorf("%s: deciding rule %q, want it to say %q: %v", tt.name, last, want, tt.audit)
		}
		walked := strings.Join(res.Rules, "\n")
		if want := "netpol-I-audit-nopolicy-"; strings.Contains(walked, want) != tt.audit {
			t.Errorf("%s: the packet met an NFLOG prefix %q: %v, want %v:\n%s", tt.name, want, !tt.audit, tt.audit, walked)
		}
		if c, err := ParseDropPrefix("netpol-I-audit-nopolicy-ABCDEFGHIJKLMNOP"); err != nil || c.Verdict != VerdictWouldDeny {
			t.Errorf("ParseDropPrefix of an audit prefix: %+v, %v", c, err)
		}
		v := Evaluate(s, atts, Connection{From: client, To: db, Protocol: corev1.ProtocolTCP, Port: 6379})
		want := NoRuleAllows
		if tt.audit {
			want = WouldDeny
		}
		if v.Ingress.Verdict.Reason != want || v.Allowed != tt.audit {
			t.Errorf("%s: Evaluate says %v (allowed %v), want reason %v", tt.name, v.Ingress.Verdict, v.Allowed, want)
		}
	}
}
