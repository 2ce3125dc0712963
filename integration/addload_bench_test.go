package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/policy/testsnap"
)

// bnHeldLine finds how long each sync of a long-running agent held the
// data directory lock (its log's held=).
var bnHeldLine = regexp.MustCompile(`msg=synced .* held=(\S+)`)

// bnPercentile is the p-th percentile (0..100, nearest rank) of ds.
func bnPercentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// BenchmarkAddUnderLoad is netpol's own ADD (bin/netpol invoked as libcni
// does) on two nodes synced on the 10,000-pod, 1,000-policy cluster, ADD
// by ADD in turn: "busy", where a long-running agent repairs every second
// (--repair-interval 1s: a read-back of the whole node each time) and a
// manifest changes every second (a pod of another node relabelled, so that
// it syncs), and "idle", where the agent ran --once and is gone (the
// baseline). Target (issue 10): busy p99 ≤ 2 × idle p50. Also printed: how
// long the busy agent's syncs held the data directory lock.
func BenchmarkAddUnderLoad(b *testing.B) {
	bnRequireRoot(b)
	const adds = 81
	cluster := bnLargeCluster()
	local := cluster.LocalPods()
	type bnNode struct {
		name  string
		node  *node.Node
		dir   string
		netns string
		adds  []time.Duration
	}
	var nodes []*bnNode
	for _, name := range []string{"busy", "idle"} {
		n := node.New(b, node.Options{Name: bnNodeName})
		dir := b.TempDir()
		if err := cluster.WriteManifests(dir); err != nil {
			b.Fatal(err)
		}
		bnWrite(b, dir, "30-change.json", bnRelabelled(cluster, 0))
		bnRunAgentOnce(b, n, dir)
		_, path, err := n.NewPodNetNS()
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, &bnNode{name: name, node: n, dir: dir, netns: path})
	}
	busy := nodes[0]
	a, err := busy.node.StartAgent("--manifests", busy.dir, "--node-name", bnNodeName, "--repair-interval", "1s")
	if err != nil {
		b.Fatal(err)
	}
	if _, ok := bnWaitFor(5*time.Minute, func() bool { return strings.Contains(a.Output(), "msg=synced") }); !ok {
		b.Fatalf("the busy agent never synced:\n%s", a.Output())
	}
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan int)
	go func() { // a change every second
		k := 0
		defer func() { changed <- k }()
		for tick := time.NewTicker(time.Second); ; {
			select {
			case <-ctx.Done():
				tick.Stop()
				return
			case <-tick.C:
				k++
				bnReplace(b, busy.dir, "30-change.json", bnRelabelled(cluster, k))
			}
		}
	}()
	for i := range adds {
		p := local[i%len(local)]
		for k := range nodes {
			c := nodes[(i+k)%len(nodes)]
			cid, err := node.NewContainerID()
			if err != nil {
				b.Fatal(err)
			}
			args := node.PodArgs{Namespace: p.Namespace, Name: p.Name, ContainerID: cid, NetNSPath: c.netns, IfName: "eth0"}
			actx, acancel := context.WithTimeout(context.Background(), time.Minute)
			start := time.Now()
			_, err = c.node.InvokePlugin(actx, "ADD", "netpol", args, bnPrevResult(testsnap.LocalIP(i%len(local)), c.netns))
			d := time.Since(start)
			acancel()
			if err != nil {
				b.Fatalf("%s: ADD %s/%s: %v", c.name, p.Namespace, p.Name, err)
			}
			c.adds = append(c.adds, d)
		}
		time.Sleep(150 * time.Millisecond) // spread the ADDs over the repairs and changes
	}
	cancel()
	changes := <-changed
	out := a.Output()
	if err := a.Stop(); err != nil {
		b.Errorf("stop the busy agent: %v", err)
	}
	var held []time.Duration
	for _, m := range bnHeldLine.FindAllStringSubmatch(out, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			held = append(held, d)
		}
	}
	repairs := strings.Count(out, "repairing")
	var log bnLog
	log.add("netpol ADD, %d per node, ms (min median max) p90 p99; busy: %d manifest changes, %d syncs, %d drift repairs meanwhile",
		adds, changes, len(held), repairs)
	for _, c := range nodes {
		log.add("%-5s %s  p90 %6.1f  p99 %6.1f", c.name, bnSpread(c.adds), bnMs(bnPercentile(c.adds, 90)), bnMs(bnPercentile(c.adds, 99)))
	}
	if len(held) > 0 {
		log.add("busy agent's syncs held the lock: %s ms (min median max)", bnSpread(held))
	}
	idle := bnMedian(nodes[1].adds)
	p99 := bnPercentile(nodes[0].adds, 99)
	log.add("busy p99 / idle p50: %.2f (target ≤ 2)", float64(p99)/float64(idle))
	bnReport(b, "agent=busy", log, bnMetric{bnMs(bnMedian(nodes[0].adds)), "ms/add"}, bnMetric{bnMs(p99), "p99_ms"},
		bnMetric{float64(p99) / float64(idle), "p99_x_idle"})
	bnReport(b, "agent=idle", nil, bnMetric{bnMs(idle), "ms/add"}, bnMetric{bnMs(bnPercentile(nodes[1].adds, 99)), "p99_ms"})
}

// bnRelabelled is a manifest of one pod of another node whose labels
// change with k (a peer that some policy selects in one version only).
func bnRelabelled(c *testsnap.Cluster, k int) string {
	ns := c.Namespaces[1].Name
	return fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":%q,"name":"relabelled","labels":{"tier":"backend","version":"v%d"}},`+
		`"spec":{"nodeName":"worker-001","containers":[{"name":"c","image":"x"}]},"status":{"podIP":"10.250.0.9","podIPs":[{"ip":"10.250.0.9"}]}}`,
		ns, 1+k%2)
}

// bnWaitFor polls cond every 50 ms until it holds or limit passes.
func bnWaitFor(limit time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start), cond()
}

// bnReplace replaces dir/name with content atomically (temp + rename);
// safe to call from any goroutine.
func bnReplace(b *testing.B, dir, name, content string) {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		b.Error(err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		b.Error(err)
	}
}
