package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDecodeDeployManifests decodes the shipped manifests into the kinds
// Create and Delete handle, in file order.
func TestDecodeDeployManifests(t *testing.T) {
	want := map[string]string{
		"rbac.yaml":      "*v1.ServiceAccount *v1.ClusterRole *v1.ClusterRoleBinding",
		"netpol.yaml":    "*v1.DaemonSet",
		"uninstall.yaml": "*v1.DaemonSet",
	}
	for name, kinds := range want {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got []string
		for _, o := range objs {
			got = append(got, fmt.Sprintf("%T", o))
		}
		if strings.Join(got, " ") != kinds {
			t.Errorf("%s decodes to %v, want %s", name, got, kinds)
		}
	}
}
