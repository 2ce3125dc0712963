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
		{"longest valid", "K8S_POD_NAMESPACE=" + strings.Repeat("n", 63) + ";K8S_POD_NAME=" + strings.Repeat("a.b", 84),
			PodArgs{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("a.b", 84)}},
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
		{"shell in name", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=$(touch x)", `key K8S_POD_NAME: "$(touch x)" is not a valid pod name`},
		{"name too long", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + strings.Repeat("a", 254),
			`key K8S_POD_NAME: "` + strings.Repeat("a", 254) + `" is not a valid pod name: must be no more than 253 characters`},
		{"upper case name", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=Web", `key K8S_POD_NAME: "Web"`},
		{"semicolon in namespace", "K8S_POD_NAMESPACE=a;b;K8S_POD_NAME=web", `invalid pair "b"`},
		{"slash in namespace", "K8S_POD_NAMESPACE=a/b;K8S_POD_NAME=web", `key K8S_POD_NAMESPACE: "a/b" is not a valid namespace`},
		{"slash in name", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=../x", `key K8S_POD_NAME: "../x"`},
		{"dot in namespace", "K8S_POD_NAMESPACE=a.b;K8S_POD_NAME=web", `key K8S_POD_NAMESPACE: "a.b" is not a valid namespace`},
		{"namespace too long", "K8S_POD_NAMESPACE=" + strings.Repeat("n", 64) + ";K8S_POD_NAME=web", "must be no more than 63 characters"},
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
