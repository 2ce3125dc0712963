package integration

// Drop records on real traffic: every packet netpol drops is logged by the
// kernel to the agent's NFLOG group, and the agent writes one record per
// packet naming the pods, the direction, the path, the reason and the
// policies that select the isolated pod.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/state"
)

// dropRecords returns the records of a node's drop log (`netpol-agent drops`).
func dropRecords(t *testing.T, n *node.Node, args ...string) []state.DropRecord {
	t.Helper()
	out, err := n.RunAgent(append([]string{"drops"}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", n.Name, err, out)
	}
	var recs []state.DropRecord
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" {
			continue
		}
		var r state.DropRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: drops printed %q: %v", n.Name, l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// wantDrop is what the record of one denied cell must say.
type wantDrop struct {
	node      int // whose drop log has it
	direction string
	path      string
	reason    string
	policies  []string
}

// cellRecords returns the records of TCP port 80 from src to dst.
func cellRecords(recs []state.DropRecord, src, dst string) []state.DropRecord {
	var out []state.DropRecord
	for _, r := range recs {
		if r.Src.Pod == src && r.Dst.Pod == dst && r.Dst.Port == 80 && r.Protocol == "TCP" {
			out = append(out, r)
		}
	}
	return out
}

// startDropAgents starts a long-running agent on every node of w that logs
// every drop (a rate no test reaches) and checks the kernel back every
// 200 ms, and waits for each to sync.
func startDropAgents(t *testing.T, w *clusterWorld, extra ...string) []*node.Agent {
	t.Helper()
	var agents []*node.Agent
	for _, n := range w.c.Nodes {
		args := append([]string{"--manifests", w.dir, "--node-name", n.Name, "--repair-interval", "200ms",
			"--drop-log-rate", "10000", "--drop-log-burst", "10000"}, extra...)
		a, err := n.StartAgent(args...)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := waitFor(20*time.Second, 20*time.Millisecond, func() bool {
			return strings.Contains(a.Output(), "msg=synced")
		}); !ok {
			t.Fatalf("agent on %s did not sync within 20s:\n%s", n.Name, a.Output())
		}
		agents = append(agents, a)
	}
	return agents
}

// TestDropRecordsMatrix: three nodes, the nine pods of nineWorld and
// ninePolicies, probed on TCP 80. Every denied cell, same-node (bridged)
// and cross-node (routed), has records on the node that dropped it, with
// the right pods, direction, path, reason and selecting policies; no
// allowed cell has one. A pod no manifest names is dropped as "pod not
// known yet". The agents' read-back never finds the log rules drifted.
func TestDropRecordsMatrix(t *testing.T) {
	nss, specs := nineWorld()
	w := newClusterWorld(t, node.ClusterOptions{Nodes: 3}, nss, specs)
	w.policies = ninePolicies
	w.add(80)
	w.write(true)
	ghost := w.addOne(placedPod{key: "prod/ghost", node: 0}, 80) // in no manifest: DENY
	agents := startDropAgents(t, w)
	pods := w.list(nineKeys...)
	expect(t, "TCP 80", pods, pods, "tcp", 80, nineTCP80...)
	ops := w.list("ops/a", "ops/b")
	expect(t, "to the unknown pod", ops, []*node.Pod{ghost}, "tcp", 80, "X", "X")
	expect(t, "from the unknown pod", []*node.Pod{ghost}, ops, "tcp", 80, "X X")

	want := map[[2]string]wantDrop{}
	denied := grid(t, nineKeys, nineKeys, nineTCP80...)
	nodeOf := map[string]int{}
	for _, s := range specs {
		nodeOf[s.key] = s.node
	}
	nodeOf["prod/ghost"] = 0
	path := func(a, b string) string {
		if nodeOf[a] == nodeOf[b] {
			return "bridged"
		}
		return "routed"
	}
	for _, src := range nineKeys {
		for _, dst := range nineKeys {
			if allowed, _ := denied.Get(src, dst); allowed {
				continue
			}
			if src == "dev/b" {
				want[[2]string{src, dst}] = wantDrop{nodeOf[src], "egress", path(src, dst), "no policy allows it", []string{"dev/b-egress-to-ops-c"}}
			} else {
				want[[2]string{src, dst}] = wantDrop{nodeOf[dst], "ingress", path(src, dst), "no policy allows it",
					[]string{"prod/allow-from-ops", "prod/deny-ingress"}}
			}
		}
	}
	for _, o := range []string{"ops/a", "ops/b"} {
		want[[2]string{o, "prod/ghost"}] = wantDrop{0, "ingress", path(o, "prod/ghost"), "pod not known yet", []string{}}
	}
	want[[2]string{"prod/ghost", "ops/b"}] = wantDrop{0, "egress", "routed", "pod not known yet", []string{}}
	want[[2]string{"prod/ghost", "ops/a"}] = wantDrop{0, "egress", "bridged", "pod not known yet", []string{}}

	// The reader is asynchronous: wait (bounded) until every denied cell
	// has a record on its node.
	var logs [][]state.DropRecord
	missing := func() []string {
		logs = logs[:0]
		for _, n := range w.c.Nodes {
			logs = append(logs, dropRecords(t, n))
		}
		var out []string
		for cell, wd := range want {
			if len(cellRecords(logs[wd.node], cell[0], cell[1])) == 0 {
				out = append(out, cell[0]+">"+cell[1])
			}
		}
		slices.Sort(out)
		return out
	}
	if _, ok := waitFor(15*time.Second, 250*time.Millisecond, func() bool { return len(missing()) == 0 }); !ok {
		t.Errorf("denied cells without a drop record on their node: %v", missing())
	}
	checkDropRecords(t, w, logs, want)
	for i, a := range agents {
		if strings.Contains(a.Output(), "kernel drifted") {
			t.Errorf("%s: the read-back found drift:\n%s", w.c.Nodes[i].Name, a.Output())
		}
	}
}

// checkDropRecords checks every record of every node against want: a
// record of an allowed cell, or one that says anything else, is an error.
func checkDropRecords(t *testing.T, w *clusterWorld, logs [][]state.DropRecord, want map[[2]string]wantDrop) {
	t.Helper()
	total := 0
	shown := map[string]bool{}
	for i, recs := range logs {
		for _, r := range recs {
			if r.Dst.Port != 80 || r.Protocol != "TCP" {
				continue // the test's only traffic is TCP 80
			}
			total++
			if kind := r.Direction + " " + r.Path + " " + r.Reason; !shown[kind] {
				shown[kind] = true
				b, _ := json.Marshal(r)
				t.Logf("%s: %s", w.c.Nodes[i].Name, b)
			}
			wd, ok := want[[2]string{r.Src.Pod, r.Dst.Pod}]
			got := fmt.Sprintf("%d %s %s %s %q %s", i, r.Direction, r.Path, r.Reason, r.Policies, r.Verdict)
			exp := fmt.Sprintf("%d %s %s %s %q drop", wd.node, wd.direction, wd.path, wd.reason, wd.policies)
			if !ok {
				t.Errorf("%s: record of an allowed cell %s > %s: %+v", w.c.Nodes[i].Name, r.Src.Pod, r.Dst.Pod, r)
			} else if got != exp {
				t.Errorf("%s > %s: record says %s, want %s", r.Src.Pod, r.Dst.Pod, got, exp)
			}
			if r.Src.IP != w.pods[r.Src.Pod].IP || r.Dst.IP != w.pods[r.Dst.Pod].IP || r.Src.Port == 0 {
				t.Errorf("%s > %s: addresses %+v %+v", r.Src.Pod, r.Dst.Pod, r.Src, r.Dst)
			}
		}
	}
	t.Logf("%d drop records for %d denied cells", total, len(want))
}
