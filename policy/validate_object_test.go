package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// fieldError is what a test compares of a field.Error: the kind, the path
// relative to the object, and the value.
type fieldError struct {
	Type     field.ErrorType
	Field    string
	BadValue any
}

func fieldErrors(fes field.ErrorList) []fieldError {
	var out []fieldError
	for _, fe := range fes {
		out = append(out, fieldError{fe.Type, fe.Field, fe.BadValue})
	}
	return out
}

func TestValidateNamespace(t *testing.T) {
	tests := []struct {
		name string
		ns   Namespace
		want []fieldError
	}{
		{"valid", Namespace{Name: "prod", Labels: map[string]string{"team": ""}}, nil},
		{"name not a DNS label", Namespace{Name: "Prod.x"}, []fieldError{{field.ErrorTypeInvalid, "name", "Prod.x"}}},
		{"name empty", Namespace{}, []fieldError{{field.ErrorTypeRequired, "name", ""}}},
		{"label key and value", Namespace{Name: "p", Labels: map[string]string{"-k": "ok", "team": "a b"}},
			[]fieldError{{field.ErrorTypeInvalid, "labels", "-k"}, {field.ErrorTypeInvalid, "labels[team]", "a b"}}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, fieldErrors(ValidateNamespace(&tt.ns))); diff != "" {
			t.Errorf("%s: ValidateNamespace (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestValidatePod(t *testing.T) {
	tests := []struct {
		name string
		pod  Pod
		want []fieldError
	}{
		{"valid", Pod{Namespace: "default", Name: "db-0", Node: "node-1", IPs: []string{"10.0.0.1", "fd00::1"},
			Ports: []NamedPort{{Name: "dns", Port: 53}}}, nil},
		{"no namespace", Pod{Name: "a"}, []fieldError{{field.ErrorTypeRequired, "namespace", ""}}},
		{"name", Pod{Namespace: "d", Name: "DB_0"}, []fieldError{{field.ErrorTypeInvalid, "name", "DB_0"}}},
		{"node", Pod{Namespace: "d", Name: "a", Node: "Node_1"}, []fieldError{{field.ErrorTypeInvalid, "node", "Node_1"}}},
		{"two IPv4", Pod{Namespace: "d", Name: "a", IPs: []string{"10.0.0.1", "10.0.0.2"}},
			[]fieldError{{field.ErrorTypeInvalid, "ips[1]", "10.0.0.2"}}},
		{"IP does not parse", Pod{Namespace: "d", Name: "a", IPs: []string{"x"}},
			[]fieldError{{field.ErrorTypeInvalid, "ips[0]", "x"}}},
		{"named port", Pod{Namespace: "d", Name: "a", Ports: []NamedPort{{Name: "ok", Port: 1}, {Name: "a_b", Protocol: "ICMP", Port: 0}}},
			[]fieldError{
				{field.ErrorTypeInvalid, "ports[1].name", "a_b"},
				{field.ErrorTypeInvalid, "ports[1].port", int32(0)},
				{field.ErrorTypeNotSupported, "ports[1].protocol", corev1.Protocol("ICMP")},
			}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, fieldErrors(ValidatePod(&tt.pod))); diff != "" {
			t.Errorf("%s: ValidatePod (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestValidatePolicy(t *testing.T) {
	valid := func() *networkingv1.NetworkPolicy { return &validSnapshot().Policies[0] }
	tests := []struct {
		name   string
		mutate func(np *networkingv1.NetworkPolicy)
		want   []fieldError
	}{
		{"valid", func(*networkingv1.NetworkPolicy) {}, nil},
		{"no namespace", func(np *networkingv1.NetworkPolicy) { np.Namespace = "" },
			[]fieldError{{field.ErrorTypeRequired, "metadata.namespace", ""}}},
		{"podSelector", func(np *networkingv1.NetworkPolicy) { np.Spec.PodSelector.MatchLabels["role"] = "db!" },
			[]fieldError{{field.ErrorTypeInvalid, "spec.podSelector.matchLabels[role]", "db!"}}},
		{"except outside cidr", func(np *networkingv1.NetworkPolicy) { np.Spec.Ingress[0].From[0].IPBlock.Except[0] = "10.0.0.0/24" },
			[]fieldError{{field.ErrorTypeInvalid, "spec.ingress[0].from[0].ipBlock.except[0]", "10.0.0.0/24"}}},
		{"egress peer with ipBlock and selector", func(np *networkingv1.NetworkPolicy) {
			np.Spec.Egress[0].To[0].NamespaceSelector = &metav1.LabelSelector{}
		}, []fieldError{{field.ErrorTypeForbidden, "spec.egress[0].to[0]", ""}}},
		{"policyTypes", func(np *networkingv1.NetworkPolicy) { np.Spec.PolicyTypes[0] = "Both" },
			[]fieldError{{field.ErrorTypeNotSupported, "spec.policyTypes[0]", networkingv1.PolicyType("Both")}}},
	}
	for _, tt := range tests {
		np := valid()
		tt.mutate(np)
		if diff := cmp.Diff(tt.want, fieldErrors(ValidatePolicy(np))); diff != "" {
			t.Errorf("%s: ValidatePolicy (-want +got):\n%s", tt.name, diff)
		}
	}
}
