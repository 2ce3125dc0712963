package manifest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/netpol/netpol/policy"
)

// TestAuditAnnotationAndVersion: a Namespace annotated netpol.io/audit:
// "true" is in audit in the snapshot, any other value is not; a policy's
// resourceVersion in a manifest is dropped, so its version is its content.
func TestAuditAnnotationAndVersion(t *testing.T) {
	dir := t.TempDir()
	doc := `apiVersion: v1
kind: Namespace
metadata: {name: a, annotations: {netpol.io/audit: "true"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b, annotations: {netpol.io/audit: "yes"}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: a, resourceVersion: "99"}
spec: {podSelector: {}}
`
	if err := os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := Load(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Audited("a") || snap.Audited("b") {
		t.Errorf("audit: a %v (want true), b %v (want false)", snap.Audited("a"), snap.Audited("b"))
	}
	if v := policy.Version(&snap.Policies[0]); v == "99" || len(v) != len("sha256:")+16 {
		t.Errorf("manifest policy version %q, want a content hash", v)
	}
}
