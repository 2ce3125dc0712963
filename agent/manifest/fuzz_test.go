package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/policy"
)

// FuzzLoad loads one arbitrary manifest file (YAML or JSON). A snapshot Load
// accepts, rendered back as a v1 List of Namespaces, Pods and
// NetworkPolicies, loads to the same snapshot.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"seed", "mixed", "duplicate", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data, filepath.Ext(file) == ".json")
			}
		}
	}
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: x}}\n"+
		"spec: {nodeName: n2, containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}\n"+
		"status: {podIPs: [{ip: 10.0.0.1}, {ip: 'fd00::1'}]}\n"), false)
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}]}`), true)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		ext := ".yaml"
		if isJSON {
			ext = ".json"
		}
		snap, err := loadBytes(t, data, ext)
		if err != nil {
			return
		}
		rendered, err := json.Marshal(renderList(snap))
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		again, err := loadBytes(t, rendered, ".json")
		if err != nil {
			t.Fatalf("rendered snapshot does not load: %v\n%s", err, rendered)
		}
		if diff := cmp.Diff(snap, again, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip changed the snapshot (-first +second):\n%s", diff)
		}
	})
}

// loadBytes loads data as the only file of a fresh directory.
func loadBytes(t *testing.T, data []byte, ext string) (*policy.Snapshot, error) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m"+ext), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(dir, "node-a")
}

// renderList renders a snapshot as the manifests it stands for.
func renderList(s *policy.Snapshot) map[string]any {
	var items []any
	for _, ns := range s.Namespaces {
		items = append(items, &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: coreV1, Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels},
		})
	}
	for _, p := range s.Pods {
		pod := &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: coreV1, Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
			Spec:       corev1.PodSpec{NodeName: p.Node, Containers: []corev1.Container{{Name: "c"}}},
		}
		for _, port := range p.Ports {
			pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports,
				corev1.ContainerPort{Name: port.Name, Protocol: port.Protocol, ContainerPort: port.Port})
		}
		for _, ip := range p.IPs {
			pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		items = append(items, pod)
	}
	for _, np := range s.Policies {
		np.TypeMeta = metav1.TypeMeta{APIVersion: networkingV1, Kind: "NetworkPolicy"}
		items = append(items, &np)
	}
	return map[string]any{"apiVersion": coreV1, "kind": "List", "items": items}
}
