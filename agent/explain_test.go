package agent

import (
	"bytes"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
	"github.com/netpol/netpol/state/cluster"
)

// explainWorld stores a node with db (dual-stack, admitting ingress from
// 10.0.0.0/8 and nothing over IPv6), client (dual-stack), v4 (IPv4-only)
// and v6 (IPv6-only).
func explainWorld(t *testing.T) *Agent {
	st := state.New(t.TempDir())
	snap := snapshot("default")
	for _, name := range []string{"db", "client", "v4", "v6"} {
		snap.Pods = append(snap.Pods, policy.Pod{Namespace: "default", Name: name, Node: "n",
			Labels: map[string]string{"app": name}})
	}
	snap.Policies = []networkingv1.NetworkPolicy{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}}}},
		},
	}}
	if err := cluster.WriteSnapshot(st, snap); err != nil {
		t.Fatal(err)
	}
	for name, ips := range map[string][]string{"db": {"10.0.0.2", "fd00::2"}, "client": {"10.0.0.3", "fd00::3"},
		"v4": {"10.0.0.4"}, "v6": {"fd00::6"}} {
		if err := st.WriteAttachment(&policy.Attachment{ContainerID: "c-" + name, IfName: "eth0",
			Namespace: "default", Name: name, IPs: ips}); err != nil {
			t.Fatal(err)
		}
	}
	return &Agent{Store: st}
}

// TestExplainFamilies: explain takes IPv6 addresses (and an IPv4-mapped one
// as IPv4); between pods named by namespace/name it answers in every family
// both have, ALLOWED only when each is; ends with no family in common are
// an error.
func TestExplainFamilies(t *testing.T) {
	a := explainWorld(t)
	tests := []struct {
		from, to string
		allowed  bool
		says     []string // lines the report must contain
		err      string
	}{
		{"default/client", "default/db", false, []string{
			"default/client (10.0.0.3) -> default/db (10.0.0.2) TCP/80: ALLOWED",
			"default/client (fd00::3) -> default/db (fd00::2) TCP/80: DENIED"}, ""},
		{"fd00::3", "default/db", false, []string{"fd00::3 (fd00::3) -> default/db (fd00::2) TCP/80: DENIED"}, ""},
		{"FD00:0::6", "fd00::2", false, []string{"FD00:0::6 (fd00::6) -> fd00::2 (fd00::2) TCP/80: DENIED"}, ""},
		{"::ffff:10.0.0.4", "default/db", true, []string{"::ffff:10.0.0.4 (10.0.0.4) -> default/db (10.0.0.2) TCP/80: ALLOWED"}, ""},
		{"default/v4", "default/db", true, []string{"default/v4 (10.0.0.4) -> default/db (10.0.0.2) TCP/80: ALLOWED"}, ""},
		{"default/db", "default/v6", true, []string{"default/db (fd00::2) -> default/v6 (fd00::6) TCP/80: ALLOWED"}, ""},
		{"default/v4", "default/v6", false, nil, "no address family in common"},
		{"default/v4", "fd00::2", false, nil, "no address family in common"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		allowed, err := a.Explain(ExplainQuery{From: tc.from, To: tc.to, Protocol: "TCP", Port: 80}, &out)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s -> %s: err = %v, want one saying %q", tc.from, tc.to, err, tc.err)
			}
			continue
		}
		if err != nil || allowed != tc.allowed {
			t.Errorf("%s -> %s: allowed=%v, %v; want %v\n%s", tc.from, tc.to, allowed, err, tc.allowed, &out)
		}
		for _, line := range tc.says {
			if !strings.Contains(out.String(), line) {
				t.Errorf("%s -> %s: report lacks %q:\n%s", tc.from, tc.to, line, &out)
			}
		}
		if strings.Count(out.String(), " -> ") != len(tc.says) {
			t.Errorf("%s -> %s: %d families explained, want %d:\n%s", tc.from, tc.to, strings.Count(out.String(), " -> "), len(tc.says), &out)
		}
	}
}
