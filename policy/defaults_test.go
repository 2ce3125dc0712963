package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func TestNamespaceLabels(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   map[string]string
	}{
		{"prod", nil, map[string]string{NamespaceNameLabel: "prod"}},
		{"prod", map[string]string{"team": "a"}, map[string]string{NamespaceNameLabel: "prod", "team": "a"}},
		{"prod", map[string]string{NamespaceNameLabel: "other"}, map[string]string{NamespaceNameLabel: "prod"}},
	}
	for _, tt := range tests {
		in := map[string]string{}
		for k, v := range tt.labels {
			in[k] = v
		}
		if diff := cmp.Diff(tt.want, NamespaceLabels(tt.name, tt.labels)); diff != "" {
			t.Errorf("NamespaceLabels(%q, %v) (-want +got):\n%s", tt.name, tt.labels, diff)
		}
		if tt.labels != nil && !cmp.Equal(in, tt.labels) {
			t.Errorf("NamespaceLabels modified its argument: %v", tt.labels)
		}
	}
}

func TestProtocolDefaults(t *testing.T) {
	udp, empty := corev1.ProtocolUDP, corev1.Protocol("")
	tests := []struct {
		port networkingv1.NetworkPolicyPort
		want corev1.Protocol
	}{
		{networkingv1.NetworkPolicyPort{}, corev1.ProtocolTCP},
		{networkingv1.NetworkPolicyPort{Protocol: &empty}, corev1.ProtocolTCP},
		{networkingv1.NetworkPolicyPort{Protocol: &udp}, corev1.ProtocolUDP},
	}
	for _, tt := range tests {
		if got := portProtocol(&tt.port); got != tt.want {
			t.Errorf("portProtocol(%v) = %q, want %q", tt.port.Protocol, got, tt.want)
		}
	}
	got := []corev1.Protocol{ProtocolOrTCP(""), ProtocolOrTCP(corev1.ProtocolSCTP)}
	if diff := cmp.Diff([]corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolSCTP}, got); diff != "" {
		t.Errorf("ProtocolOrTCP (-want +got):\n%s", diff)
	}
}

func TestIsLocal(t *testing.T) {
	s := &Snapshot{Node: "n1"}
	tests := []struct {
		node string
		want bool
	}{{"", true}, {"n1", true}, {"n2", false}}
	for _, tt := range tests {
		if got := s.IsLocal(&Pod{Node: tt.node}); got != tt.want {
			t.Errorf("IsLocal(node %q) on n1 = %v, want %v", tt.node, got, tt.want)
		}
	}
}
