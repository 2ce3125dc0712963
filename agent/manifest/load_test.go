package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/policy"
)

// TestLoadMixed covers multi-document YAML with empty and comment-only
// documents, a JSON stream, a List with a nested List, a pod without
// nodeName, implicit namespaces, trimmed policy metadata, and the files Load
// must skip (dotfile, other extension, subdirectory).
func TestLoadMixed(t *testing.T) {
	got, err := Load("testdata/mixed", "node-1")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	httpPort := intstr.FromString("http")
	want := &policy.Snapshot{
		Version: policy.SnapshotVersion,
		Node:    "node-1",
		Namespaces: []policy.Namespace{
			{Name: "default", Labels: map[string]string{"kubernetes.io/metadata.name": "default"}},
			{Name: "prod", Labels: map[string]string{"kubernetes.io/metadata.name": "prod", "project": "myproject"}},
			{Name: "shop", Labels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		},
		Pods: []policy.Pod{
			{Namespace: "default", Name: "old", Node: "node-3", IPs: []string{"10.244.3.9"}},
			{Namespace: "prod", Name: "db-0", Node: "node-2", Labels: map[string]string{"role": "db"},
				IPs: []string{"10.244.2.7", "fd00:10:244:2::7"},
				Ports: []policy.NamedPort{
					{Name: "redis", Protocol: corev1.ProtocolTCP, Port: 6379},
					{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
				}},
			{Namespace: "shop", Name: "web", Node: "node-1", Labels: map[string]string{"app": "web"},
				Ports: []policy.NamedPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
		},
		Policies: []networkingv1.NetworkPolicy{
			{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "allow-http"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "app", Operator: metav1.LabelSelectorOpExists},
					}},
					Ingress: []networkingv1.NetworkPolicyIngressRule{{
						Ports: []networkingv1.NetworkPolicyPort{{Port: &httpPort}},
					}},
				},
			},
			{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny-all",
					Labels: map[string]string{"tier": "base"}},
			},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
}

// TestLoadSeedPolicy loads the test-network-policy example of seed 000.
func TestLoadSeedPolicy(t *testing.T) {
	got, err := Load("testdata/seed", "node-a")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	tcp := corev1.ProtocolTCP
	port6379, port5978 := intstr.FromInt32(6379), intstr.FromInt32(5978)
	want := &policy.Snapshot{
		Version: policy.SnapshotVersion,
		Node:    "node-a",
		Namespaces: []policy.Namespace{
			{Name: "default", Labels: map[string]string{"kubernetes.io/metadata.name": "default"}},
		},
		Policies: []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "test-network-policy"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "db"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{
						{IPBlock: &networkingv1.IPBlock{CIDR: "172.17.0.0/16", Except: []string{"172.17.1.0/24"}}},
						{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"project": "myproject"}}},
						{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "frontend"}}},
					},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port6379}},
				}},
				Egress: []networkingv1.NetworkPolicyEgressRule{{
					To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port5978}},
				}},
			},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
}

func TestLoadEmptyDir(t *testing.T) {
	got, err := Load("testdata/empty", "n")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &policy.Snapshot{Version: policy.SnapshotVersion, Node: "n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name string
		dir  string
		want []string // substrings of the error
	}{
		{"unknown kind", "testdata/unknown-kind",
			[]string{`testdata/unknown-kind/apps.yaml: document 2: unsupported kind "Deployment" with apiVersion "apps/v1"`}},
		{"old apiVersion", "testdata/old-apiversion",
			[]string{`testdata/old-apiversion/policy.yaml: document 1: unsupported kind "NetworkPolicy" with apiVersion "extensions/v1beta1"`}},
		{"unknown kind in List", "testdata/list-unknown-kind",
			[]string{`testdata/list-unknown-kind/list.yaml: document 1: items[1]: unsupported kind "Service"`}},
		{"unknown field", "testdata/unknown-field",
			[]string{`testdata/unknown-field/pod.yaml: document 1: kind Pod: `, `"nodeNmae"`}},
		{"bad YAML", "testdata/bad-yaml", []string{`testdata/bad-yaml/broken.yaml: document 1: `}},
		{"bad JSON", "testdata/bad-json", []string{`testdata/bad-json/ns.json: document 2: `}},
		{"invalid policy", "testdata/invalid",
			[]string{`manifests in testdata/invalid: policies[0] "default/bad-port": spec.ingress[0].ports[0].port: Invalid value: 0`}},
		{"duplicate pod across files", "testdata/duplicate",
			[]string{`pods[1] "default/web": name: Duplicate value: "web"`}},
		{"missing dir", "testdata/no-such-dir", []string{"testdata/no-such-dir"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.dir, "node-1")
			if err == nil {
				t.Fatalf("Load = %+v, want error", got)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// TestLoadFollowsSymlinks mimics a ConfigMap volume: visible names are links
// into a hidden "..data" directory, which Load itself must skip.
func TestLoadFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	ns := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: linked\n"
	if err := os.WriteFile(filepath.Join(data, "ns.yaml"), []byte(ns), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "ns.yaml"), filepath.Join(dir, "ns.yaml")); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, "node-1")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []policy.Namespace{{Name: "linked", Labels: map[string]string{"kubernetes.io/metadata.name": "linked"}}}
	if diff := cmp.Diff(want, got.Namespaces); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
}
