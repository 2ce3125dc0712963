package integration

// Benchmarks of the real binaries in throwaway network namespaces. Every
// helper starts with "bn" so that it cannot clash with the helpers of the
// other test files of this package.
//
// Each benchmark measures a fixed amount of work once (its setup, a sync of
// a 10,000-pod cluster, dominates) and reports medians as metrics from
// sub-benchmarks: a benchmark with sub-benchmarks runs its body exactly once
// whatever -benchtime says, and the sub-benchmarks only report numbers, so
// `-benchtime 20x` (make bench) costs no more than `-benchtime 1x`; the
// iteration count printed for them means nothing. There are no timing
// assertions; the targets are in the comments. Absolute numbers move with
// the load of the machine (see PERF.md: ±30%); compare within one run.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/testsnap"
	"github.com/netpol/netpol/state"
)

// bnNodeName is the Kubernetes node name of the benchmark nodes: the node
// the synthetic cluster schedules its local pods on.
const bnNodeName = "node-000"

// bnMetric is one number a sub-benchmark reports.
type bnMetric struct {
	value float64
	unit  string
}

// bnReport runs a sub-benchmark that only reports metrics (ns/op hidden)
// and logs lines once. The testing package prints the log of a benchmark
// with sub-benchmarks only under -v, but always that of a leaf: tables go
// through here.
func bnReport(b *testing.B, name string, log []string, metrics ...bnMetric) {
	b.Helper()
	b.Run(name, func(b *testing.B) {
		if b.N == 1 {
			for _, l := range log {
				b.Log(l)
			}
		}
		b.ReportMetric(0, "ns/op")
		for _, m := range metrics {
			b.ReportMetric(m.value, m.unit)
		}
	})
}

// bnLog collects the lines of a table.
type bnLog []string

func (l *bnLog) add(format string, args ...any) { *l = append(*l, fmt.Sprintf(format, args...)) }

func bnRequireRoot(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root to create network namespaces")
	}
}

// bnMs is d in milliseconds.
func bnMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// bnMedian returns the median of ds (mean of the middle two for an even
// count).
func bnMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bnSpread is "min/median/max ms" of ds, for the logged tables.
func bnSpread(ds []time.Duration) string {
	return fmt.Sprintf("%6.1f %6.1f %6.1f", bnMs(slices.Min(ds)), bnMs(bnMedian(ds)), bnMs(slices.Max(ds)))
}

// bnWrite writes content to dir/name.
func bnWrite(b *testing.B, dir, name, content string) {
	b.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}

// bnSyncLine is the agent's log line after a sync:
// `msg=synced chains=N rules=N sets=N members=N took=1.2s`.
var bnSyncLine = regexp.MustCompile(`msg=synced chains=(\d+) rules=(\d+) sets=(\d+) members=(\d+) took=(\S+)`)

// bnSync is what one `netpol-agent --once` did and how long it took.
type bnSync struct {
	wall                         time.Duration // the process, end to end
	took                         time.Duration // Agent.Sync, as logged
	chains, rules, sets, members int
}

// bnRunAgentOnce runs `netpol-agent --manifests dir --once` in the node and
// times it.
func bnRunAgentOnce(b *testing.B, n *node.Node, dir string) bnSync {
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
	if s.took, err = time.ParseDuration(m[5]); err != nil {
		b.Fatalf("agent took=%q: %v", m[5], err)
	}
	return s
}

// bnPluginLog returns the plugin's log file of the node.
func bnPluginLog(b *testing.B, n *node.Node) string {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(n.DataDir, "netpol.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		b.Fatal(err)
	}
	return string(data)
}

// bnFindCNITool finds cnitool: in $NETPOL_CNI_PATH (CI puts it in the
// first directory), the node's plugin path, or $PATH.
func bnFindCNITool(b *testing.B, n *node.Node) string {
	b.Helper()
	dirs := append(filepath.SplitList(os.Getenv("NETPOL_CNI_PATH")), n.CNIPath...)
	for _, d := range dirs {
		p := filepath.Join(d, "cnitool")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	if p, err := exec.LookPath("cnitool"); err == nil {
		return p
	}
	b.Skipf("cnitool not found in $NETPOL_CNI_PATH, %v or $PATH (make deps installs it)", n.CNIPath)
	return ""
}

// bnMountNS is an OS thread with a mount namespace of its own, in which
// libcni's cache dir (/var/lib/cni, where cnitool keeps each attachment's
// result and config for DEL; cnitool has no option to move it) is a bind
// mount of one node's cache dir. Commands started from the thread inherit
// that mount namespace; `ip netns exec` then copies it. The bind mount is
// invisible outside: nothing in the root namespaces changes.
type bnMountNS struct {
	do   chan func()
	done chan struct{} // closed when the thread has exited
}

func bnNewMountNS(b *testing.B, cacheDir string) *bnMountNS {
	b.Helper()
	if err := os.MkdirAll(libcni.CacheDir, 0o755); err != nil {
		b.Fatal(err)
	}
	m := &bnMountNS{do: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(m.done)
		// The thread is never unlocked: it exits with this goroutine, and its
		// mount namespace with it.
		runtime.LockOSThread()
		err := syscall.Unshare(syscall.CLONE_NEWNS)
		if err == nil {
			// Slave from here on, as `ip netns exec` does: mounts of the
			// root namespace still show, ours never propagate back.
			err = syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_SLAVE, "")
		}
		if err == nil {
			err = syscall.Mount(cacheDir, libcni.CacheDir, "", syscall.MS_BIND, "")
		}
		ready <- err
		if err != nil {
			return
		}
		for f := range m.do {
			f()
		}
	}()
	if err := <-ready; err != nil {
		b.Fatalf("private mount namespace for the CNI cache: %v", err)
	}
	b.Cleanup(func() { close(m.do); <-m.done })
	return m
}

// run runs f on the thread.
func (m *bnMountNS) run(f func()) {
	done := make(chan struct{})
	m.do <- func() { defer close(done); f() }
	<-done
}

// bnChain is one node driven with the real cnitool binary.
type bnChain struct {
	name     string
	node     *node.Node
	tool     string
	netconf  string // NETCONFPATH
	mnt      *bnMountNS
	add, del []time.Duration
}

func bnNewChain(b *testing.B, name string, opts node.Options) *bnChain {
	b.Helper()
	n := node.New(b, opts)
	c := &bnChain{name: name, node: n, tool: bnFindCNITool(b, n), netconf: b.TempDir()}
	bnWrite(b, c.netconf, "10-policy.conflist", string(n.Conflist()))
	c.mnt = bnNewMountNS(b, n.CacheDir)
	return c
}

// cnitool runs `ip netns exec NODE cnitool VERB NET PODNETNS` for pod
// namespace/name and returns its wall time.
// Equivalent to: CNI_PATH=... NETCONFPATH=... CNI_IFNAME=eth0
// CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=.." \
// ip netns exec NODE cnitool add netpol-test /run/netns/POD
func (c *bnChain) cnitool(verb, podNetNS, namespace, name string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", c.node.NetNS, c.tool, verb, node.DefaultNetwork, podNetNS)
	cmd.Env = append(os.Environ(),
		"CNI_PATH="+strings.Join(c.node.CNIPath, ":"),
		"NETCONFPATH="+c.netconf,
		"CNI_IFNAME=eth0",
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE="+namespace+";K8S_POD_NAME="+name,
	)
	cmd.WaitDelay = time.Second
	var took time.Duration
	var out []byte
	var err error
	c.mnt.run(func() {
		start := time.Now()
		out, err = cmd.CombinedOutput()
		took = time.Since(start)
	})
	if err != nil {
		return 0, fmt.Errorf("%s: cnitool %s %s/%s: %v\n%s", c.name, verb, namespace, name, err, out)
	}
	return took, nil
}

// bnExecFloor is the median wall time of `ip netns exec NODE true`: the
// part of every cnitool measurement that is not CNI at all.
func bnExecFloor(b *testing.B, n *node.Node) time.Duration {
	b.Helper()
	var ds []time.Duration
	for range 11 {
		start := time.Now()
		if _, err := n.Exec(context.Background(), "true"); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	return bnMedian(ds)
}

// BenchmarkCNIAddDel is what a runtime pays per pod: the real cnitool
// binary running ADD, then DEL, of 20 pods, for bridge alone and for
// bridge + netpol, on two fresh nodes of the same kind, interleaved pod by
// pod so that both chains see the same machine. The netpol node's agent has
// synced manifests that list the 20 pods and one policy selecting them, so
// ADD takes the normal indexed path (pod known, its sets named by the index).
// Reported: median_add_ms and median_del_ms per chain.
func BenchmarkCNIAddDel(b *testing.B) {
	bnRequireRoot(b)
	const pods, namespace = 20, "bench"
	bridge := bnNewChain(b, "bridge", node.Options{BridgeOnly: true, Name: bnNodeName})
	netpol := bnNewChain(b, "bridge+netpol", node.Options{Name: bnNodeName})

	manifests := b.TempDir()
	var docs []string
	for i := range pods {
		docs = append(docs, fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":%q,"name":"pod-%02d","labels":{"app":"bench"}},"spec":{"containers":[{"name":"c","image":"x"}]}}`, namespace, i))
	}
	docs = append(docs, fmt.Sprintf(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"namespace":%q,"name":"bench"},"spec":{"podSelector":{"matchLabels":{"app":"bench"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"bench"}}}],"ports":[{"protocol":"TCP","port":8080}]}]}}`, namespace))
	bnWrite(b, manifests, "bench.json", strings.Join(docs, "\n"))
	bnRunAgentOnce(b, netpol.node, manifests)

	chains := []*bnChain{bridge, netpol}
	netnses := make([][]string, len(chains))
	for ci, c := range chains {
		for range pods {
			_, path, err := c.node.NewPodNetNS()
			if err != nil {
				b.Fatal(err)
			}
			netnses[ci] = append(netnses[ci], path)
		}
	}
	// ADD every pod, then DEL every pod, alternating which chain goes first.
	for _, verb := range []string{"add", "del"} {
		for i := range pods {
			for k := range chains {
				ci := (i + k) % len(chains)
				c := chains[ci]
				d, err := c.cnitool(verb, netnses[ci][i], namespace, fmt.Sprintf("pod-%02d", i))
				if err != nil {
					b.Fatal(err)
				}
				if verb == "add" {
					c.add = append(c.add, d)
				} else {
					c.del = append(c.del, d)
				}
			}
		}
	}
	if log := bnPluginLog(b, netpol.node); strings.Count(log, "known=true") != pods {
		b.Fatalf("netpol ADDs did not all find their pod in the index:\n%s", log)
	}
	floor := bnExecFloor(b, netpol.node)

	var log bnLog
	log.add("cnitool, %d pods per chain, ms (min median max); `ip netns exec NODE true` alone: %.1f ms", pods, bnMs(floor))
	log.add("%-14s %-20s   %-20s", "chain", "ADD", "DEL")
	for _, c := range chains {
		log.add("%-14s %-20s   %-20s", c.name, bnSpread(c.add), bnSpread(c.del))
	}
	log.add("netpol adds %.1f ms to ADD and %.1f ms to DEL (medians)",
		bnMs(bnMedian(netpol.add)-bnMedian(bridge.add)), bnMs(bnMedian(netpol.del)-bnMedian(bridge.del)))
	for i, c := range chains {
		if i > 0 {
			log = nil
		}
		bnReport(b, "chain="+c.name, log,
			bnMetric{bnMs(bnMedian(c.add)), "median_add_ms"},
			bnMetric{bnMs(bnMedian(c.del)), "median_del_ms"})
	}
}

// bnLargeCluster is the cluster of the snapshot benchmarks: 10,000 pods over
// 100 namespaces and 100 nodes (100 pods on this node, the others with
// status.podIPs), 1,000 policies with pod and namespace selectors, ipBlocks,
// numeric, named and ranged ports.
func bnLargeCluster() *testsnap.Cluster { return testsnap.Generate(testsnap.Large(bnNodeName)) }

// bnPrevResult is what bridge would return for a pod with address ip.
func bnPrevResult(ip, netnsPath string) *types100.Result {
	idx := 2
	return &types100.Result{
		CNIVersion: node.DefaultCNIVersion,
		Interfaces: []*types100.Interface{
			{Name: node.DefaultBridge, Mac: "0a:58:0a:f4:01:01"},
			{Name: "veth0bench", Mac: "0a:58:0a:f4:01:02"},
			{Name: "eth0", Mac: "0a:58:0a:f4:01:03", Sandbox: netnsPath},
		},
		IPs: []*types100.IPConfig{{
			Interface: &idx,
			Address:   net.IPNet{IP: net.ParseIP(ip).To4(), Mask: net.CIDRMask(24, 32)},
			Gateway:   net.ParseIP("10.244.1.1").To4(),
		}},
	}
}

// BenchmarkAddLargeSnapshot is netpol's own ADD latency: bin/netpol invoked
// directly as libcni does (CNI_* environment, netconf with prevResult on
// stdin, in the node namespace), for 61 pods of this node, with (a) the
// agent synced on an empty snapshot and (b) the agent synced on the
// 10,000-pod, 1,000-policy snapshot. The two nodes are measured pod by pod
// in turn. Target: large ≤ 10 ms and ≤ 1.1 × empty.
func BenchmarkAddLargeSnapshot(b *testing.B) {
	bnRequireRoot(b)
	const adds = 61
	cluster := bnLargeCluster()
	local := cluster.LocalPods()

	type bnCase struct {
		name  string
		node  *node.Node
		netns string
		adds  []time.Duration
	}
	var cases []*bnCase
	var synced bnLog
	for _, name := range []string{"empty", "10k-pods"} {
		n := node.New(b, node.Options{Name: bnNodeName})
		dir := b.TempDir()
		if name != "empty" {
			if err := cluster.WriteManifests(dir); err != nil {
				b.Fatal(err)
			}
		}
		s := bnRunAgentOnce(b, n, dir)
		synced.add("%s: agent synced %d rules, %d sets, %d members in %v", name, s.rules, s.sets, s.members, s.took)
		_, path, err := n.NewPodNetNS()
		if err != nil {
			b.Fatal(err)
		}
		cases = append(cases, &bnCase{name: name, node: n, netns: path})
	}
	for i := range adds {
		p := local[i%len(local)]
		for k := range cases {
			c := cases[(i+k)%len(cases)]
			cid, err := node.NewContainerID()
			if err != nil {
				b.Fatal(err)
			}
			args := node.PodArgs{Namespace: p.Namespace, Name: p.Name, ContainerID: cid, NetNSPath: c.netns, IfName: "eth0"}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			start := time.Now()
			_, err = c.node.InvokePlugin(ctx, "ADD", "netpol", args, bnPrevResult(testsnap.LocalIP(i), c.netns))
			d := time.Since(start)
			cancel()
			if err != nil {
				b.Fatalf("%s: ADD %s/%s: %v", c.name, p.Namespace, p.Name, err)
			}
			c.adds = append(c.adds, d)
		}
	}
	// Each ADD took the path it was meant to: unknown and unrestricted on the
	// empty snapshot; known, with set entries, on the large one.
	if log := bnPluginLog(b, cases[0].node); strings.Count(log, "known=false failClosed=false") != adds {
		b.Fatalf("empty: unexpected ADD paths:\n%s", log)
	}
	if log := bnPluginLog(b, cases[1].node); strings.Count(log, "known=true") != adds || strings.Contains(log, "entries=0 ") {
		b.Fatalf("10k-pods: unexpected ADD paths:\n%s", log)
	}
	// ... and its entries are in the kernel (every pod of the cluster is in
	// the ingress group set of its namespace's default deny).
	saved, err := cases[1].node.Exec(context.Background(), "ipset", "save")
	if err != nil {
		b.Fatal(err)
	}
	for i := range adds {
		if !strings.Contains(string(saved), " "+testsnap.LocalIP(i)+"\n") {
			b.Fatalf("10k-pods: %s is in no set after its ADD", testsnap.LocalIP(i))
		}
	}
	empty, large := bnMedian(cases[0].adds), bnMedian(cases[1].adds)
	log := synced
	log.add("netpol ADD, %d per snapshot, ms (min median max)", adds)
	for _, c := range cases {
		log.add("%-9s %s", c.name, bnSpread(c.adds))
	}
	log.add("ratio 10k-pods/empty: %.2f (target ≤ 1.10); 10k-pods median %.2f ms (target ≤ 10)", float64(large)/float64(empty), bnMs(large))
	bnReport(b, "snapshot=empty", log, bnMetric{bnMs(empty), "ms/add"})
	bnReport(b, "snapshot=10k-pods", nil, bnMetric{bnMs(large), "ms/add"}, bnMetric{float64(large) / float64(empty), "x_empty"})
}

// BenchmarkAgentFullSync times `netpol-agent --once` on the 10,000-pod,
// 1,000-policy cluster: end to end (process start, manifest load and
// validation, compile, one ipset restore, one iptables-restore per family,
// state files) and Agent.Sync alone (its logged took=), first on a fresh node
// whose 100 local pods CNI ADD already recorded, then again with nothing
// changed.
func BenchmarkAgentFullSync(b *testing.B) {
	bnRequireRoot(b)
	cluster := bnLargeCluster()
	n := node.New(b, node.Options{Name: bnNodeName})
	dir := b.TempDir()
	if err := cluster.WriteManifests(dir); err != nil {
		b.Fatal(err)
	}
	st := state.New(n.DataDir)
	for _, a := range cluster.Attachments(len(cluster.LocalPods())) {
		if err := st.WriteAttachment(&a); err != nil {
			b.Fatal(err)
		}
	}
	first := bnRunAgentOnce(b, n, dir)
	second := bnRunAgentOnce(b, n, dir)
	var log bnLog
	log.add("%-9s %10s %10s %7s %6s %5s %8s", "sync", "wall ms", "sync ms", "chains", "rules", "sets", "members")
	syncs := []struct {
		name string
		bnSync
	}{{"first", first}, {"unchanged", second}}
	for _, s := range syncs {
		log.add("%-9s %10.1f %10.1f %7d %6d %5d %8d", s.name, bnMs(s.wall), bnMs(s.took), s.chains, s.rules, s.sets, s.members)
	}
	for i, s := range syncs {
		if i > 0 {
			log = nil
		}
		bnReport(b, "sync="+s.name, log,
			bnMetric{bnMs(s.wall), "ms/run"},
			bnMetric{bnMs(s.took), "ms/sync"},
			bnMetric{float64(s.chains), "chains"},
			bnMetric{float64(s.rules), "rules"},
			bnMetric{float64(s.sets), "sets"},
			bnMetric{float64(s.members), "members"})
	}
}

// TestBnIPSetNetlink guards the fast path BenchmarkAddLargeSnapshot relies
// on: a Runner in its own network namespace (as the plugin runs) adds and
// deletes set entries over netlink, starting no `ipset` process (PATH is
// empty while it does), for every kind of entry the compiler makes, with
// `ipset -exist` semantics (twice is fine; for DEL, a missing set is fine).
func TestBnIPSetNetlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	n := node.New(t, node.Options{BridgeOnly: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range [][]string{
		{"NETPOL4-BN-IP", "hash:ip", "inet"}, {"NETPOL6-BN-IP", "hash:ip", "inet6"},
		{"NETPOL4-BN-NET", "hash:net", "inet"}, {"NETPOL6-BN-NET", "hash:net", "inet6"},
		{"NETPOL4-BN-PORT", "hash:ip,port", "inet"}, {"NETPOL6-BN-PORT", "hash:ip,port", "inet6"},
	} {
		if _, err := n.Exec(ctx, "ipset", "create", c[0], c[1], "family", c[2]); err != nil {
			t.Fatal(err)
		}
	}
	entries := []ipt.Entry{
		{Set: "NETPOL4-BN-IP", Value: "10.244.1.7"}, {Set: "NETPOL6-BN-IP", Value: "fd00::7"},
		{Set: "NETPOL4-BN-NET", Value: "172.17.0.0/16"}, {Set: "NETPOL6-BN-NET", Value: "fd01::/64"},
		{Set: "NETPOL4-BN-PORT", Value: "10.244.1.7,tcp:8080"}, {Set: "NETPOL4-BN-PORT", Value: "10.244.1.7,udp:53"},
		{Set: "NETPOL4-BN-PORT", Value: "10.244.1.8,sctp:9999"}, {Set: "NETPOL6-BN-PORT", Value: "fd00::7,tcp:443"},
	}
	path := os.Getenv("PATH")
	withoutIPSet := func(what string, f func(r *ipt.Runner) error) {
		t.Helper()
		t.Setenv("PATH", t.TempDir())
		defer os.Setenv("PATH", path)
		r := &ipt.Runner{Timeout: time.Minute}
		if err := ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error { return f(r) }); err != nil {
			t.Fatalf("%s with no ipset binary: %v", what, err)
		}
	}
	saved := func() string {
		t.Helper()
		out, err := n.Exec(ctx, "ipset", "save")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	withoutIPSet("AddEntries twice", func(r *ipt.Runner) error {
		return errors.Join(r.AddEntries(ctx, entries), r.AddEntries(ctx, entries))
	})
	got := saved()
	for _, e := range entries {
		if !strings.Contains(got, "add "+e.Set+" "+e.Value+"\n") {
			t.Errorf("after AddEntries, no %s %s in:\n%s", e.Set, e.Value, got)
		}
	}
	withoutIPSet("DelEntries twice, with a missing set", func(r *ipt.Runner) error {
		del := append(slices.Clone(entries), ipt.Entry{Set: "NETPOL4-BN-GONE", Value: "10.0.0.1"})
		return errors.Join(r.DelEntries(ctx, del), r.DelEntries(ctx, del))
	})
	if got := saved(); strings.Contains(got, "add ") {
		t.Errorf("after DelEntries, entries are left:\n%s", got)
	}
}
