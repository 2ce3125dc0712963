package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/policy/testsnap"
	"github.com/netpol/netpol/state"
)

// BenchmarkAgentOnce times `netpol-agent --manifests DIR --once` end to end
// (the process, as a user runs it) on issue 10's cluster: 150 YAML files
// (~6 MiB) of 10,000 pods on 100 other nodes, 110 on this node (recorded by
// CNI ADD), 1,000 NetworkPolicies in 50 namespaces. Each round runs, in
// turn:
//
//   - cold: after `netpol-agent --uninstall` (no chain, set or state file of
//     ours; the pod records are written again);
//   - warm: again, nothing changed;
//   - label: one label of one pod of another node changed in its file;
//   - start: `netpol-agent --help`, the process start alone (baseline).
//
// With NETPOL_BENCH_BASELINE_BIN set to a directory holding the
// netpol-agent of another commit, each round also runs cold, warm and
// label with it (named base-cold, ...), interleaved with this commit's.
//
// Targets (issue 10): cold ≤ 1.0 s, warm ≤ 0.5 s, label ≤ 0.5 s.
func BenchmarkAgentOnce(b *testing.B) {
	bnRequireRoot(b)
	const rounds = 5
	cluster := testsnap.Generate(testsnap.Issue10(bnNodeName))
	n := node.New(b, node.Options{Name: bnNodeName})
	dir := b.TempDir()
	if _, err := cluster.WriteYAMLManifests(dir); err != nil {
		b.Fatal(err)
	}
	remote := bnRemotePod(b, cluster)
	records := func() {
		st := state.New(n.DataDir)
		for _, a := range cluster.Attachments(len(cluster.LocalPods())) {
			if err := st.WriteAttachment(&a); err != nil {
				b.Fatal(err)
			}
		}
	}
	kinds := []string{"cold", "warm", "label", "start"}
	ours, base := n.BinDir, os.Getenv("NETPOL_BENCH_BASELINE_BIN")
	if base != "" {
		kinds = append(kinds, "base-cold", "base-warm", "base-label")
	}
	times := map[string][]time.Duration{}
	spans := map[string]string{} // the agent's own timings, last round
	var last bnSync
	for round := range rounds {
		for _, kind := range kinds {
			n.BinDir = ours
			switch strings.TrimPrefix(kind, "base-") {
			case "cold":
				if out, err := n.RunAgent("--uninstall"); err != nil {
					b.Fatalf("uninstall: %v\n%s", err, out)
				}
				records()
			case "label":
				cluster.Pods[remote].Labels["bench-round"] = fmt.Sprint(kind, round)
				if _, err := cluster.WriteYAMLManifests(dir); err != nil {
					b.Fatal(err)
				}
			case "start":
				times[kind] = append(times[kind], bnAgentStart(b, n))
				continue
			}
			if strings.HasPrefix(kind, "base-") {
				n.BinDir = base
			}
			var phases string
			last, phases = bnRunAgentPhases(b, n, dir)
			times[kind] = append(times[kind], last.wall)
			spans[kind] = phases
		}
	}
	n.BinDir = ours
	var log bnLog
	log.add("netpol-agent --manifests (150 YAML files) --once, %d rounds interleaved, ms (min median max); synced %d rules, %d sets, %d members",
		rounds, last.rules, last.sets, last.members)
	for _, kind := range kinds {
		log.add("%-10s %s   %s", kind, bnSpread(times[kind]), spans[kind])
	}
	log.add("targets: cold ≤ 1000, warm ≤ 500, label ≤ 500; after the times, the agent's own spans in the last round")
	for i, kind := range kinds {
		if i > 0 {
			log = nil
		}
		bnReport(b, "run="+kind, log, bnMetric{bnMs(bnMedian(times[kind])), "ms/run"})
	}
}

// bnRemotePod returns the index of a pod of another node in cluster.Pods.
func bnRemotePod(b *testing.B, c *testsnap.Cluster) int {
	b.Helper()
	for i, p := range c.Pods {
		if p.Spec.NodeName != c.Config.Node {
			return i
		}
	}
	b.Fatal("no pod of another node")
	return 0
}

// bnAgentStart times `netpol-agent --help` in the node: starting the
// process and parsing its flags, which every run above pays too.
func bnAgentStart(b *testing.B, n *node.Node) time.Duration {
	b.Helper()
	start := time.Now()
	out, err := n.RunAgent("--help")
	took := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 2) || !strings.Contains(string(out), "-manifests") {
		b.Fatalf("netpol-agent --help: %v\n%s", err, out)
	}
	return took
}

// bnAgentSpans are the timings the agent logs: loading the manifests, and
// the phases of its sync.
var bnAgentSpans = regexp.MustCompile(`msg="loaded manifests" (.*)|msg=synced .*( took=.*)`)

// bnRunAgentPhases is bnRunAgentOnce, also returning the agent's own spans.
func bnRunAgentPhases(b *testing.B, n *node.Node, dir string) (bnSync, string) {
	b.Helper()
	start := time.Now()
	out, err := n.RunAgent("--manifests", dir, "--once")
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("agent: %v\n%s", err, out)
	}
	m := bnSyncLine.FindStringSubmatch(string(out))
	if m == nil {
		b.Fatalf("agent output has no sync line:\n%s", out)
	}
	s := bnSync{wall: wall}
	for i, p := range []*int{&s.chains, &s.rules, &s.sets, &s.members} {
		*p, _ = strconv.Atoi(m[i+1])
	}
	var spans []string
	for _, sm := range bnAgentSpans.FindAllStringSubmatch(string(out), -1) {
		spans = append(spans, strings.TrimSpace(sm[1]+sm[2]))
	}
	return s, strings.Join(spans, ";")
}
