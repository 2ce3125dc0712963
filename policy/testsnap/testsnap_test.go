package testsnap

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/policy"
)

// The snapshot the benchmarks compile must be the one netpol-agent makes of
// the manifests the integration benchmarks write.
func TestSnapshotMatchesManifests(t *testing.T) {
	cfg := Config{Seed: 7, Node: "node-a", Nodes: 5, Namespaces: 12, Pods: 300, LocalPods: 10, Policies: 60}
	c := Generate(cfg)
	dir := t.TempDir()
	if err := c.WriteManifests(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := manifest.Load(dir, cfg.Node)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(loaded, c.Snapshot()); d != "" {
		t.Errorf("Snapshot() differs from manifest.Load of the manifests (-load +Snapshot):\n%s", d)
	}
	if got := len(c.LocalPods()); got != cfg.LocalPods {
		t.Errorf("%d local pods, want %d", got, cfg.LocalPods)
	}
}

func TestLargeIsValidAndDeterministic(t *testing.T) {
	a, b := Generate(Large("n1")).Snapshot(), Generate(Large("n1")).Snapshot()
	if err := policy.ValidateSnapshot(a); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatal("two generations of the same config differ")
	}
	if len(a.Pods) != 10000 || len(a.Policies) != 1000 || len(a.Namespaces) != 100 {
		t.Fatalf("got %d pods, %d policies, %d namespaces", len(a.Pods), len(a.Policies), len(a.Namespaces))
	}
	c, err := policy.Compile(a, Generate(Large("n1")).Attachments(100))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Index.Pods) != 100 {
		t.Errorf("index has %d local pods, want 100", len(c.Index.Pods))
	}
}
