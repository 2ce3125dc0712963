package manifest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/testsnap"
)

// A Cache that decodes only the changed documents of the changed files and
// validates only their objects (plus names and namespaces) loads, after
// each of a random sequence of edits, what a fresh Load does: the same
// snapshot, or the same error. Edits: relabel a pod, give a pod or a
// policy an invalid label, duplicate a pod, delete one, and undo.
func TestCacheIncrementalIsLoad(t *testing.T) {
	cfg := testsnap.Config{Seed: 5, Node: "node-1", Nodes: 4, Namespaces: 6, Pods: 300, LocalPods: 10, Policies: 60}
	cluster := testsnap.Generate(cfg)
	dir := t.TempDir()
	c := NewCache("node-1")
	r := rand.New(rand.NewPCG(1, 2))
	errs := 0
	for step := range 40 {
		what := "start"
		if step > 0 {
			what = edit(r, cluster)
		}
		if _, err := cluster.WriteYAMLManifests(dir); err != nil {
			t.Fatal(err)
		}
		got, gotErr := c.Load(dir)
		want, wantErr := Load(dir, "node-1")
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("step %d (%s): Cache.Load error %v, Load error %v", step, what, gotErr, wantErr)
		}
		if wantErr != nil {
			errs++
			continue
		}
		if err := policy.ValidateSnapshot(got); err != nil {
			t.Fatalf("step %d (%s): Cache.Load and Load accepted an invalid snapshot: %v", step, what, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("step %d (%s): Cache.Load differs from Load (-Load +Cache):\n%s", step, what, d)
		}
	}
	if errs == 0 || errs == 39 {
		t.Errorf("%d of 40 loads failed: the edits should make some invalid and some valid", errs)
	}
}

// edit makes one random edit to c and says what it did.
func edit(r *rand.Rand, c *testsnap.Cluster) string {
	p := &c.Pods[r.IntN(len(c.Pods))]
	switch r.IntN(8) {
	case 0, 1:
		p.Labels["tier"] = fmt.Sprintf("t%d", r.IntN(3))
		return "relabel pod " + p.Name
	case 2:
		p.Labels["tier"] = "not valid!"
		return "invalid label on pod " + p.Name
	case 3:
		np := &c.Policies[r.IntN(len(c.Policies))]
		np.Labels = map[string]string{"bad key!": "x"}
		return "invalid label on policy " + np.Name
	case 4:
		c.Pods = append(c.Pods, *p.DeepCopy())
		return "duplicate pod " + p.Name
	case 5:
		i := r.IntN(len(c.Pods))
		name := c.Pods[i].Name
		c.Pods = append(c.Pods[:i], c.Pods[i+1:]...)
		return "delete pod " + name
	default: // 6, 7
		for i := range c.Pods {
			if c.Pods[i].Labels["tier"] == "not valid!" {
				c.Pods[i].Labels["tier"] = "fixed"
			}
		}
		for i := range c.Policies {
			c.Policies[i].Labels = nil
		}
		seen := map[string]bool{}
		c.Pods = slices.DeleteFunc(c.Pods, func(p corev1.Pod) bool {
			k := p.Namespace + "/" + p.Name
			defer func() { seen[k] = true }()
			return seen[k]
		})
		return "make every label valid again, drop duplicates"
	}
}
