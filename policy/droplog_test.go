package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netpol/netpol/ipt"
)

// TestDropsAreLoggedWithTheirCause walks packets through the compiled
// ruleset: every denied packet meets exactly one NFLOG rule, whose prefix
// names the direction, the reason and (through Compiled.Groups) the
// policies; no allowed packet meets one.
func TestDropsAreLoggedWithTheirCause(t *testing.T) {
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: testPods,
		Policies: parsePolicies(t, seedPolicy)}
	atts := append([]Attachment{{ContainerID: "c-new", Namespace: "default", Name: "new", IPs: []string{"10.244.1.50"}}}, testAtts...)
	c, err := Compile(s, atts)
	if err != nil {
		t.Fatal(err)
	}
	seed := []string{"default/test-network-policy"}
	tests := []struct {
		name     string
		pkt      packet
		dir      Direction
		reason   string
		policies []string // nil: allowed, no log
	}{
		{"client to db (ingress)", tcp(client, db, 6379), Ingress, ReasonNoPolicy, seed},
		{"db to frontend (egress)", tcp(db, fe, 80), Egress, ReasonNoPolicy, seed},
		{"unknown pod sends", tcp("10.244.1.50", fe, 80), Egress, ReasonUnknown, []string{}},
		{"frontend to unknown pod", tcp(fe, "10.244.1.50", 80), Ingress, ReasonUnknown, []string{}},
		{"frontend to db (allowed)", tcp(fe, db, 6379), 0, "", nil},
		{"frontend to client (not isolated)", tcp(fe, client, 80), 0, "", nil},
	}
	for _, tt := range tests {
		for _, bridged := range []bool{true, false} {
			pk := tt.pkt
			pk.Bridged = bridged
			res, err := Trace(c, pk)
			if err != nil {
				t.Fatal(err)
			}
			if tt.policies == nil {
				if !res.Allowed || len(res.Logged) != 0 {
					t.Errorf("%s: allowed=%v logged=%q, want allowed and nothing logged", tt.name, res.Allowed, res.Logged)
				}
				continue
			}
			if res.Allowed || len(res.Logged) != 1 {
				t.Fatalf("%s: allowed=%v logged=%q, want dropped and one log", tt.name, res.Allowed, res.Logged)
			}
			cause, err := ParseDropPrefix(res.Logged[0])
			if err != nil {
				t.Fatal(err)
			}
			got := c.Groups[cause.Group]
			if cause.Group == "" {
				got = []string{}
			}
			if cause.Direction != tt.dir || cause.Reason != tt.reason || !cmp.Equal(got, tt.policies) {
				t.Errorf("%s: %+v policies %q, want %s %s %q", tt.name, cause, got, tt.dir, tt.reason, tt.policies)
			}
		}
	}
}

func TestDropPrefixRoundTrip(t *testing.T) {
	for _, c := range []DropCause{
		{Direction: Ingress, Verdict: VerdictDrop, Reason: ReasonNoPolicy, Group: hash("ingress:a/b")},
		{Direction: Egress, Verdict: VerdictDrop, Reason: ReasonUnknown},
	} {
		p := c.Prefix()
		if len(p) > 48 || strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			t.Errorf("prefix %q: longer than 48 bytes or not a plain token", p)
		}
		got, err := ParseDropPrefix(p)
		if err != nil || got != c {
			t.Errorf("ParseDropPrefix(%q) = %+v, %v; want %+v", p, got, err, c)
		}
	}
	for _, bad := range []string{"", "netpol", "netpol-X-drop-unknown", "netpol-I-drop-bogus", "netpol-I-drop-nopolicy",
		"netpol-I-drop-unknown-AAAAAAAAAAAAAAAA", "netpol-I-drop-nopolicy-short", "netpol-I-drop-nopolicy-aaaaaaaaaaaaaaaa",
		"other-I-drop-unknown", "netpol-I-accept-unknown", "netpol-I-drop-nopolicy-AAAAAAAAAAAAAAAA-x"} {
		if _, err := ParseDropPrefix(bad); err == nil {
			t.Errorf("ParseDropPrefix(%q) accepted it", bad)
		}
	}
}

// TestDropLogOff: rate 0 leaves only the DROPs, and a bad rate is an error
// naming the field.
func TestDropLogOff(t *testing.T) {
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: testPods,
		Policies: parsePolicies(t, seedPolicy), DropLog: &DropLog{}}
	c, err := Compile(s, testAtts)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range c.Ruleset(ipt.IPv4).Chains {
		for _, r := range ch.Rules {
			if r.Verdict.Target == ipt.NFLOGTarget {
				t.Errorf("rate 0 still logs: %s", ipt.RenderRule(ch.Name, r))
			}
		}
	}
	s.DropLog = &DropLog{Rate: 20000, Burst: 1}
	if _, err := Compile(s, testAtts); err == nil || !strings.Contains(err.Error(), "dropLog.rate 20000") {
		t.Errorf("Compile with rate 20000: %v", err)
	}
}
