package testsnap

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
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

// The index of the large cluster survives the trip through its file
// unchanged, and its compact form stays small: ADD decodes all of it.
func BenchmarkReadIndex(b *testing.B) {
	c := Generate(Large("n1"))
	compiled, err := policy.Compile(c.Snapshot(), c.Attachments(100))
	if err != nil {
		b.Fatal(err)
	}
	st := state.New(b.TempDir())
	if err := st.WriteIndex(&compiled.Index); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := st.ReadIndexFor("ns-042/pod-00042"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestIndexRoundTrip(t *testing.T) {
	c := Generate(Large("n1"))
	compiled, err := policy.Compile(c.Snapshot(), c.Attachments(100))
	if err != nil {
		t.Fatal(err)
	}
	st := state.New(t.TempDir())
	if err := st.WriteIndex(&compiled.Index); err != nil {
		t.Fatal(err)
	}
	got, err := st.ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&compiled.Index, got); d != "" {
		t.Errorf("index changed on disk (-compiled +read):\n%s", d)
	}
	for k, ms := range compiled.Index.Pods {
		one, err := st.ReadIndexFor(k)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string][]policy.Membership{k: ms}, one.Pods); d != "" {
			t.Errorf("ReadIndexFor(%s) (-want +got):\n%s", k, d)
		}
	}
	if one, err := st.ReadIndexFor("nope/nope"); err != nil || len(one.Pods) != 0 || len(one.Isolated) != len(compiled.Index.Isolated) {
		t.Errorf("ReadIndexFor of an unknown pod: %+v, %v", one, err)
	}
	info, err := os.Stat(filepath.Join(st.Dir, "index"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("index for %d local pods: %d bytes", len(got.Pods), info.Size())
	if info.Size() > 32<<10 {
		t.Errorf("the index is %d bytes for %d pods; the compact form should stay under 32 KiB", info.Size(), len(got.Pods))
	}
	for _, bad := range []string{
		"netpol-index 1\nisolated\npod a/b 3\n",                // reference past the table
		"netpol-index 1\nisolated\nm NETPOL4-P-X\npod a/b 0\n", // no family
		"netpol-index x\nisolated\n",                           // version
		"{\"version\":1}",                                      // not an index
	} {
		if _, err := state.DecodeIndex([]byte(bad), ""); err == nil {
			t.Errorf("%q: accepted, want an error", bad)
		}
	}
}
