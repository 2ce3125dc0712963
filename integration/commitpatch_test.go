package integration

import (
	"testing"
	"time"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/integration/node"
)

// TestCommitPatchesWithoutTheLock: a sync that finds, once it holds the
// data directory lock to commit, that a pod was ADDed (the real plugin,
// through libcni) since it compiled lets the lock go and patches its
// result without it, so that the node's next ADD does not wait for the
// patch: here that ADD comes while the sync patches, takes the lock
// (it would wait a minute for it and fail otherwise), and the commit
// that follows holds both new pods, each in its group set and isolated as
// its policy says.
func TestCommitPatchesWithoutTheLock(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	pods := addServingPods(t, n, "default/db1", "default/web")
	labels := map[string]string{"default/db1": "app=db", "default/web": "app=web"}
	writeManifest(t, dir, "10-pods.yaml", podsYAML(labels))
	before, err := manifest.Load(dir, n.Name)
	if err != nil {
		t.Fatal(err)
	}
	labels["default/db2"], labels["default/db3"] = "app=db", "app=db"
	writeManifest(t, dir, "10-pods.yaml", podsYAML(labels))
	after, err := manifest.Load(dir, n.Name)
	if err != nil {
		t.Fatal(err)
	}
	var added []*node.Pod
	calls := 0
	inNodeAgent(t, n, func(a *agent.Agent) error {
		ctx := timeoutCtx(t, 3*time.Minute)
		if _, err := a.Sync(ctx, before); err != nil {
			return err
		}
		a.BeforeCommit = func() { // before each time the sync takes the lock
			calls++
			switch calls {
			case 1: // between the compile and the commit
				added = append(added, addServingPods(t, n, "default/db2")...)
			case 2: // while the sync patches that ADD's record
				added = append(added, addServingPods(t, n, "default/db3")...)
			}
		}
		_, err := a.Sync(ctx, after)
		return err
	})
	if calls < 2 {
		t.Fatalf("the sync took the lock %d time(s): it patched the record of the pod ADDed before its commit under the lock", calls)
	}
	sets := nodeSets(t, n)
	for i, p := range added {
		wantSets(t, sets, []string{"db2", "db3"}[i], p.IP, "NETPOL4-GI-")
	}
	expectMatrix(t, "after the ADDs during the commit", []*node.Pod{pods[1], pods[0]}, added,
		"default/web>default/db2", "default/web>default/db3")
}
