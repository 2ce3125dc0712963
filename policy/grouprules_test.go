package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestGroupStopsAtFirstAllow selects one server with two policies (np-a
// admits app=a, np-b admits app=b, both on TCP 80): a packet the first
// policy allows must not walk the second policy's chain, a packet only the
// second allows must walk both and be allowed, and one neither allows must
// walk both and be dropped.
func TestGroupStopsAtFirstAllow(t *testing.T) {
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: []Namespace{{Name: "ns"}}}
	var atts []Attachment
	ips := map[string]string{"server": "10.1.0.2", "a": "10.1.0.3", "b": "10.1.0.4", "c": "10.1.0.5"}
	for _, app := range []string{"server", "a", "b", "c"} {
		s.Pods = append(s.Pods, Pod{Namespace: "ns", Name: app, Node: "n1", Labels: map[string]string{"app": app}})
		atts = append(atts, Attachment{ContainerID: "c-" + app, IfName: "eth0", Namespace: "ns", Name: app, IPs: []string{ips[app]}})
	}
	port, tcp := intstr.FromInt32(80), corev1.ProtocolTCP
	for _, from := range []string{"a", "b"} {
		s.Policies = append(s.Policies, networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "np-" + from},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": from}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
				}},
			},
		})
	}
	c, err := Compile(s, atts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from     string
		policies []string // the policy chains walked, in order
		allowed  bool
	}{
		{"a", []string{"ns/np-a"}, true},
		{"b", []string{"ns/np-a", "ns/np-b"}, true},
		{"c", []string{"ns/np-a", "ns/np-b"}, false},
	} {
		for _, bridged := range []bool{true, false} {
			res, err := Trace(c, Packet{Src: ips[tc.from], Dst: ips["server"], Protocol: "tcp", DPort: 80, Bridged: bridged})
			if err != nil {
				t.Fatal(err)
			}
			if res.Allowed != tc.allowed {
				t.Errorf("%s -> server (bridged=%v): allowed=%v, want %v: %q", tc.from, bridged, res.Allowed, tc.allowed, res.Rules)
			}
			var walked []string
			for _, ref := range res.Walked {
				for _, key := range []string{"ns/np-a", "ns/np-b"} {
					if ref.Chain == policyChain(Ingress, key) && ref.Index == 0 {
						walked = append(walked, key)
					}
				}
			}
			if strings.Join(walked, " ") != strings.Join(tc.policies, " ") {
				t.Errorf("%s -> server (bridged=%v): walked the chains of %q, want %q: %q", tc.from, bridged, walked, tc.policies, res.Rules)
			}
		}
	}
}
