package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/ipt"
)

func TestVerdict(t *testing.T) {
	tests := []struct {
		v      Verdict
		action Action
		says   string
	}{
		{Verdict{Reason: OwnAddress}, Allow, "a pod's traffic to itself is never blocked"},
		{Verdict{Reason: NoIndex}, Deny, "no snapshot yet: denied until the agent syncs"},
		{Verdict{Reason: KnownPod}, Next, "pod known to the snapshot"},
		{Verdict{Reason: UnknownIsolated}, Deny,
			"pod not in the snapshot and its namespace has policies: denied until the agent knows it"},
		{Verdict{Reason: UnknownOpen}, Allow, "pod not in the snapshot; its namespace has no policy"},
		{Verdict{Reason: NotAPod}, Allow, "not a pod: no policy applies"},
		{Verdict{Reason: NotSelected, Direction: Ingress}, Allow, "no policy selects the pod for ingress: allowed"},
		{Verdict{Reason: NotSelected, Direction: Egress}, Allow, "no policy selects the pod for egress: allowed"},
		{Verdict{Reason: AllowedByRule, Keys: []string{"a/p ingress[0]", "a/q ingress[2]"}}, Allow,
			"allowed by a/p ingress[0], a/q ingress[2]"},
		{Verdict{Reason: NoRuleAllows, Keys: []string{"a/p", "a/q"}}, Deny, "no rule of a/p, a/q allows it"},
		{Verdict{Reason: WouldDeny, Keys: []string{"a/p"}}, Allow, "would-deny (audit): no rule of a/p allows it; passed"},
		{Verdict{}, Deny, "no verdict: denied"},
		{Verdict{Reason: 200}, Deny, "no verdict: denied"},
	}
	for _, tt := range tests {
		got := struct {
			Action  Action
			Allowed bool
			Says    string
		}{tt.v.Action(), tt.v.Allowed(), tt.v.String()}
		want := struct {
			Action  Action
			Allowed bool
			Says    string
		}{tt.action, tt.action == Allow, tt.says}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%#v (-want +got):\n%s", tt.v, diff)
		}
	}
}

func TestActionString(t *testing.T) {
	got := []string{Next.String(), Allow.String(), Deny.String()}
	if diff := cmp.Diff([]string{"next", "allow", "deny"}, got); diff != "" {
		t.Errorf("Action.String (-want +got):\n%s", diff)
	}
}

// TestIndexAdmit checks the four admissions of a pod on ADD, and that
// Entries puts its addresses where the admission says.
func TestIndexAdmit(t *testing.T) {
	idx := &Index{
		Version:  SnapshotVersion,
		Isolated: []string{"locked", "prod"},
		Pods: map[string][]Membership{
			"prod/db": {{Family: ipt.IPv4, Set: "NETPOL4-G-X"}},
		},
	}
	tests := []struct {
		name    string
		idx     *Index
		att     Attachment
		want    Reason
		entries []string
	}{
		{"known pod: its memberships", idx, Attachment{Namespace: "prod", Name: "db", IPs: []string{"10.0.0.1"}},
			KnownPod, []string{"NETPOL4-G-X 10.0.0.1"}},
		{"unknown pod, isolated namespace: DENY", idx, Attachment{Namespace: "locked", Name: "x", IPs: []string{"10.0.0.2"}},
			UnknownIsolated, []string{"NETPOL4-DENY 10.0.0.2"}},
		{"unknown pod, open namespace: nothing", idx, Attachment{Namespace: "open", Name: "x", IPs: []string{"10.0.0.3"}},
			UnknownOpen, nil},
		{"no index: DENY", nil, Attachment{Namespace: "open", Name: "x", IPs: []string{"10.0.0.4", "fd00::4"}},
			NoIndex, []string{"NETPOL4-DENY 10.0.0.4", "NETPOL6-DENY fd00::4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.idx.Admit(&tt.att); !cmp.Equal(got, Verdict{Reason: tt.want}) {
				t.Errorf("Admit = %#v, want reason %d", got, tt.want)
			}
			var entries []string
			for _, e := range tt.idx.Entries(&tt.att) {
				entries = append(entries, e.Set+" "+e.Value)
			}
			if diff := cmp.Diff(tt.entries, entries); diff != "" {
				t.Errorf("Entries (-want +got):\n%s", diff)
			}
		})
	}
}
