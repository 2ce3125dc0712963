package conf

import (
	"strings"
	"testing"
)

func TestParsePodArgs(t *testing.T) {
	tests := []struct {
		name string
		args string
		want PodArgs
	}{
		{"containerd", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;" +
			"K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0d1e2f",
			PodArgs{Namespace: "default", Name: "web-0"}},
		{"infra ID and UID accepted without IgnoreUnknown", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;" +
			"K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0d1e2f",
			PodArgs{Namespace: "default", Name: "web-0"}},
		{"only identity", "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns",
			PodArgs{Namespace: "kube-system", Name: "dns"}},
		{"unknown key ignored", "IgnoreUnknown=true;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;FOO=bar",
			PodArgs{Namespace: "a", Name: "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePodArgs(tt.args)
			if err != nil {
				t.Fatalf("ParsePodArgs: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParsePodArgsRejects(t *testing.T) {
	tests := []struct {
		name string
		args string
		want string
	}{
		{"empty", "", "K8S_POD_NAMESPACE"},
		{"no namespace", "IgnoreUnknown=1;K8S_POD_NAME=web", "K8S_POD_NAMESPACE"},
		{"empty namespace", "K8S_POD_NAMESPACE=;K8S_POD_NAME=web", "K8S_POD_NAMESPACE"},
		{"no name", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default", "K8S_POD_NAME"},
		{"bad pair", "K8S_POD_NAMESPACE", `invalid pair "K8S_POD_NAMESPACE"`},
		{"unknown key", "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;FOO=bar", "FOO=bar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePodArgs(tt.args)
			if err == nil {
				t.Fatalf("ParsePodArgs = %+v, want error", got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}
