package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// bnRealizePolicy is the policy the realization benchmark edits: all pods
// of namespace ns, ingress on one TCP port that each round changes.
func bnRealizePolicy(ns string, port int) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bench-realize, namespace: %s}
spec:
  podSelector: {}
  ingress:
  - ports: [{protocol: TCP, port: %d}]
`, ns, port)
}

// BenchmarkPolicyRealization measures netpol_policy_realization_seconds's
// samples at 10,000 pods / 1,000 policies: a long-running agent on the
// manifests of the large cluster (100 local pods recorded) and, as the
// baseline interleaved round by round, one on the same namespace and policy
// alone. Each round edits the policy's port and reads, once `status` has
// the new version, its realization (kernel commit - receipt, as the
// histogram observes it). Prints min/p50/p99/max per world.
func BenchmarkPolicyRealization(b *testing.B) {
	bnRequireRoot(b)
	const rounds = 12
	cluster := bnLargeCluster()
	local := cluster.LocalPods()[0]
	ns := local.Namespace // the bench policy selects a pod of this node in both worlds
	type world struct {
		name    string
		n       *node.Node
		dir     string
		agent   *node.Agent
		samples []time.Duration
	}
	var worlds []*world
	for _, name := range []string{"baseline", "10k-pods"} {
		w := &world{name: name, n: node.New(b, node.Options{Name: bnNodeName}), dir: b.TempDir()}
		atts := cluster.Attachments(len(cluster.LocalPods()))
		if name == "baseline" {
			bnWrite(b, w.dir, "00-world.yaml", yamlDocs(namespaceYAML(ns), podYAML(ns+"/"+local.Name, "")))
			atts = atts[:1]
		} else if err := cluster.WriteManifests(w.dir); err != nil {
			b.Fatal(err)
		}
		st := state.New(w.n.DataDir)
		for _, a := range atts {
			if err := st.WriteAttachment(&a); err != nil {
				b.Fatal(err)
			}
		}
		bnWrite(b, w.dir, "30-bench.yaml", bnRealizePolicy(ns, 1000))
		a, err := w.n.StartAgent("--manifests", w.dir, "--node-name", bnNodeName)
		if err != nil {
			b.Fatal(err)
		}
		defer a.Stop()
		w.agent = a
		bnRealizedVersion(b, w.n, ns, "", 3*time.Minute)
		worlds = append(worlds, w)
	}
	for i := range rounds {
		for k := range worlds {
			w := worlds[(i+k)%len(worlds)]
			content := bnRealizePolicy(ns, 1001+i)
			version := bnPolicyVersion(b, content)
			bnWriteAtomic(b, w.dir, "30-bench.yaml", content)
			r := bnRealizedVersion(b, w.n, ns, version, 2*time.Minute)
			w.samples = append(w.samples, r.Realized.Sub(r.Received))
		}
	}
	var log bnLog
	log.add("policy realization (receipt of the changed manifest -> kernel commit), %d changes per world, ms;", rounds)
	log.add("sync: the median Agent.Sync of those changes (compile, apply, write), the rest is loading the manifests")
	log.add("%-9s %8s %8s %8s %8s %8s", "world", "min", "p50", "p99", "max", "sync")
	for _, w := range worlds {
		s := append([]time.Duration(nil), w.samples...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		log.add("%-9s %8.1f %8.1f %8.1f %8.1f %8.1f", w.name, bnMs(s[0]), bnMs(bnQuantile(s, .5)), bnMs(bnQuantile(s, .99)),
			bnMs(s[len(s)-1]), bnMs(bnSyncMedian(w.agent.Output(), rounds)))
	}
	for i, w := range worlds {
		if i > 0 {
			log = nil
		}
		s := append([]time.Duration(nil), w.samples...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		bnReport(b, "world="+w.name, log, bnMetric{bnMs(bnQuantile(s, .5)), "p50_ms"}, bnMetric{bnMs(bnQuantile(s, .99)), "p99_ms"})
	}
}

// bnWriteAtomic writes content to dir/name through a temp file and a
// rename, so that a polling agent never reads half of it.
func bnWriteAtomic(b *testing.B, dir, name, content string) {
	b.Helper()
	bnWrite(b, dir, "."+name+".tmp", content)
	if err := os.Rename(filepath.Join(dir, "."+name+".tmp"), filepath.Join(dir, name)); err != nil {
		b.Fatal(err)
	}
}

// bnRunSyncLine is the long-running agent's log line after a sync.
var bnRunSyncLine = regexp.MustCompile(`msg=synced why=change .* took=(\S+)`)

// bnSyncMedian is the median took= of the last n syncs an agent logged.
func bnSyncMedian(out string, n int) time.Duration {
	var took []time.Duration
	for _, m := range bnRunSyncLine.FindAllStringSubmatch(out, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			took = append(took, d)
		}
	}
	if len(took) > n {
		took = took[len(took)-n:]
	}
	if len(took) == 0 {
		return 0
	}
	return bnMedian(took)
}

// bnQuantile is the q-quantile of sorted s (nearest rank).
func bnQuantile(s []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// bnPolicyVersion is the version the agent reports for the bench policy.
func bnPolicyVersion(b *testing.B, content string) string {
	dir := b.TempDir()
	bnWrite(b, dir, "p.yaml", content)
	snap, err := manifest.Load(dir, bnNodeName)
	if err != nil || len(snap.Policies) != 1 {
		b.Fatalf("bench policy: %v", err)
	}
	return policy.Version(&snap.Policies[0])
}

// bnRealizedVersion waits (bounded) until the node's realized.json has the
// bench policy at version (any when ""), and returns its record.
func bnRealizedVersion(b *testing.B, n *node.Node, ns, version string, limit time.Duration) state.PolicyRealized {
	var got state.PolicyRealized
	if _, ok := waitFor(limit, 5*time.Millisecond, func() bool {
		r, err := state.New(n.DataDir).ReadRealized()
		if err != nil {
			return false
		}
		for _, p := range r.Policies {
			if p.Policy == ns+"/bench-realize" && (version == "" || p.Version == version) {
				got = p
				return true
			}
		}
		return false
	}); !ok {
		b.Fatalf("%s: bench policy %s not realized within %v", n.Name, strings.TrimSpace(version), limit)
	}
	return got
}
