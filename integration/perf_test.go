package integration

// BenchmarkPerf (make perf) prints every row of issue 10's table as a
// figure to compare across commits: each measurement of netpol's side is
// paired with its baseline, measured right before or after it (the order
// alternates pair by pair) in the same run, and each row reports the ratio
// of the pairs as min/median/max. Absolute numbers move with the load of
// the machine; the ratios much less. No assertion is made on any number.
//
// Nodes (network namespaces built with integration/node):
//
//	netpol  bridge + netpol, agent synced on the large world (pfLarge), its
//	        110 local pods real (CNI ADD through libcni)
//	bridge  bridge alone, the two pods of the traffic rows
//	floor   bridge alone with one rule in FORWARD, the conntrack
//	        RELATED,ESTABLISHED accept: the least a stateful firewall
//	        costs (conntrack on, the FORWARD hook walked), the same two pods
//	empty   bridge + netpol, agent synced on no manifests
//	agent   bridge + netpol, the large world, the 110 local pods recorded
//	small   bridge + netpol, the small world (pfSmall), 10 local pods recorded
//
// Everything is driven through the binaries' flags, the data directory and
// the kernel (iptables-save, ipset, netlink), never through agent or plugin
// internals, so the harness measures whatever those become.

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/policy/testsnap"
)

// pfPairs is how many pairs each ratio row measures (NETPOL_PERF_PAIRS,
// at least 5).
func pfPairs() int {
	if n, err := strconv.Atoi(os.Getenv("NETPOL_PERF_PAIRS")); err == nil && n >= 5 {
		return n
	}
	return 7
}

// pfRows is the rows to measure (NETPOL_PERF_ROWS, numbers separated by
// commas, e.g. "5,6"; rows 1 to 8, the table, when unset). Row 8 comes
// with row 6. Row 9 (perf_walk_test.go) is measured only when named.
func pfRows() map[int]bool {
	env := os.Getenv("NETPOL_PERF_ROWS")
	rows := map[int]bool{}
	for _, f := range strings.Split(env, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			rows[n] = true
		}
	}
	if len(rows) == 0 {
		for n := 1; n <= 8; n++ {
			rows[n] = true
		}
	}
	return rows
}

const (
	pfPort      = 5200        // netpol-traffic serve
	pfIperfPort = 5201        // iperf3 -s
	pfTrafficOn = time.Second // one connect or send run
)

// pfRow is one row of the table: netpol's side and its baseline, paired.
type pfRow struct {
	name     string
	unit     string
	side     []float64 // netpol's side
	base     []float64 // the baseline, base[i] measured beside side[i]
	percents bool      // also print p50/p90/p99/max of both sides
}

// pfBench is the state shared by the rows.
type pfBench struct {
	large, small   *testsnap.Cluster
	traffic        string
	netpol, bridge *bnChain
	floor          *node.Node // row 1's third node: bridge + the conntrack rule
	empty          *node.Node
	agent, smallN  *node.Node
	agentM, smallM *pfManifests
	client, server [3]*node.Pod // [netpol, bridge, floor]
	iperf          bool         // iperf3 is installed: row 2 uses it
	log            bnLog
	rows           map[int]bool // pfRows
}

// BenchmarkPerf measures the rows of issue 10's table; see the file comment
// and the README (make perf). It takes 5 to 10 minutes.
func BenchmarkPerf(b *testing.B) {
	bnRequireRoot(b)
	start := time.Now()
	p := pfSetup(b)
	took := []string{"setup " + time.Since(start).Round(time.Second).String()}
	var rows []pfRow
	for i, f := range []func(*testing.B) []pfRow{
		p.connects, p.throughput, p.cniAdd, p.netpolAdd, p.agentOnce, p.live,
	} {
		if !p.rows[i+1] && (i+1 != 6 || !p.rows[7]) {
			continue
		}
		t := time.Now()
		got := f(b)
		rows = append(rows, got...)
		keys := strings.Fields(got[0].name)[0]
		if len(got) > 1 {
			keys += "-" + strings.Fields(got[len(got)-1].name)[0]
		}
		took = append(took, keys+" "+time.Since(t).Round(time.Second).String())
	}
	if p.rows[9] {
		t := time.Now()
		rows = append(rows, p.walkVariants(b)...)
		took = append(took, "9 "+time.Since(t).Round(time.Second).String())
	}
	p.log.add("took %v: %s", time.Since(start).Round(time.Second), strings.Join(took, ", "))
	pfPrint(b, p.log, rows)
}

// pfSetup builds the worlds and the nodes.
func pfSetup(b *testing.B) *pfBench {
	b.Helper()
	p := &pfBench{large: pfLarge(), small: pfSmall(), rows: pfRows()}
	if p.rows[1] || p.rows[2] || p.rows[3] || p.rows[4] || p.rows[7] || p.rows[9] {
		p.setupTraffic(b)
	}
	p.agent = node.New(b, node.Options{Name: bnNodeName})
	p.agentM = pfWriteManifests(b, p.large)
	p.smallN = node.New(b, node.Options{Name: bnNodeName})
	p.smallM = pfWriteManifests(b, p.small)
	if p.netpol == nil {
		p.log.add("world: %d pods (%d here), %d policies in %d namespaces, %d manifest files",
			len(p.large.Pods), len(p.large.LocalPods()), len(p.large.Policies), len(p.large.Namespaces), 3*len(p.large.Namespaces))
	}
	return p
}

// setupTraffic builds the nodes of rows 1 to 4 and the idle side of row 7.
func (p *pfBench) setupTraffic(b *testing.B) {
	b.Helper()
	p.traffic = pfBuildTraffic(b)
	p.netpol = bnNewChain(b, "bridge+netpol", node.Options{Name: bnNodeName})
	p.bridge = bnNewChain(b, "bridge", node.Options{BridgeOnly: true, Name: bnNodeName})
	netpolM := pfWriteManifests(b, p.large)
	pfRunOnce(b, p.netpol.node, netpolM.dir) // so that ADD knows the pods
	client, server := pfPair(b, p.large)
	// Every node of these rows holds the same 110 real pods on its bridge:
	// the bridge plugin's own ADD grows with the bridge's ports (~10 ms
	// more at 110 than at 2 here), which is not netpol's.
	addPods := func(n *node.Node) (c, s *node.Pod) {
		for _, lp := range p.large.LocalPods() {
			pod, err := n.AddPod(lp.Namespace, lp.Name)
			if err != nil {
				b.Fatal(err)
			}
			switch lp.Name {
			case client.Name:
				c = pod
			case server.Name:
				s = pod
			}
		}
		return c, s
	}
	p.client[0], p.server[0] = addPods(p.netpol.node)
	p.client[1], p.server[1] = addPods(p.bridge.node)
	if p.rows[1] || p.rows[9] {
		p.floor = node.New(b, node.Options{BridgeOnly: true, Name: bnNodeName})
		p.client[2], p.server[2] = addPods(p.floor)
		if out, err := p.floor.Exec(context.Background(), "iptables", "-w", "-A", "FORWARD",
			"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"); err != nil {
			b.Fatalf("floor node: %v\n%s", err, out)
		}
	}
	out, err := p.netpol.node.RunAgent("--manifests", netpolM.dir, "--once")
	if err != nil {
		b.Fatalf("agent: %v\n%s", err, out)
	}
	synced := "?"
	if m := bnSyncLine.FindStringSubmatch(string(out)); m != nil {
		synced = fmt.Sprintf("%s chains, %s rules, %s sets, %s members", m[1], m[2], m[3], m[4])
	}
	p.log.add("world: %d pods (%d here), %d policies in %d namespaces, %d manifest files; netpol node: %s",
		len(p.large.Pods), len(p.large.LocalPods()), len(p.large.Policies), len(p.large.Namespaces), 3*len(p.large.Namespaces), synced)
	p.log.add("traffic: %s -> %s (%s)", client.Name, server.Name, client.Namespace)
	if _, err := exec.LookPath("iperf3"); err == nil {
		p.iperf = true
	}
	for i := range p.server {
		if p.server[i] == nil {
			continue // no floor node: row 1 is not measured
		}
		pfServe(b, p.server[i], "listening", p.traffic, "serve", "-port", strconv.Itoa(pfPort))
		if p.iperf {
			pfServe(b, p.server[i], "Server listening", "iperf3", "-s", "--forceflush", "-p", strconv.Itoa(pfIperfPort))
		}
		// Allowed on both nodes, or the rows would measure drops.
		if _, err := pfRun(p.client[i], p.traffic, "connect", p.server[i].IP, pfPort, 100*time.Millisecond); err != nil {
			b.Fatal(err)
		}
	}

	p.empty = node.New(b, node.Options{Name: bnNodeName})
	pfRunOnce(b, p.empty, b.TempDir())
}

// pfRates runs the traffic generator in mode on each of the nodes given
// by index (0 netpol, 1 bridge, 2 floor), pairs times, rotating which node
// goes first, conntrack flushed before each run; rates[k][i] is node
// nodes[k]'s rate in round i.
func (p *pfBench) pfRates(b *testing.B, mode string, nodes ...int) (rates [][]float64) {
	b.Helper()
	rates = make([][]float64, len(nodes))
	for i := range pfPairs() {
		for o := range nodes {
			k := (i + o) % len(nodes)
			r, err := p.pfRate(mode, nodes[k])
			if err != nil {
				b.Fatal(err)
			}
			rates[k] = append(rates[k], r)
		}
	}
	return rates
}

// pfRate is one run of mode (connect or send) between the pair of node j
// (0 netpol, 1 bridge, 2 floor), conntrack flushed before it.
func (p *pfBench) pfRate(mode string, j int) (float64, error) {
	all := []*node.Node{p.netpol.node, p.bridge.node, p.floor}
	if err := all[j].FlushConntrack(); err != nil {
		return 0, err
	}
	if mode == "send" && p.iperf {
		return pfIperf(p.client[j], p.server[j].IP, pfIperfPort, pfTrafficOn)
	}
	return pfRun(p.client[j], p.traffic, mode, p.server[j].IP, pfPort, pfTrafficOn)
}

// connects is row 1: new TCP connections per second, one connector,
// connect then RST, on the netpol, bridge and floor nodes in turn. Beside
// the row itself it prints the floor against the bridge (what conntrack
// and a walked FORWARD hook cost any stateful firewall) and netpol against
// the floor (what netpol's own rules add), from the same rounds.
func (p *pfBench) connects(b *testing.B) []pfRow {
	r := p.pfRates(b, "connect", 0, 1, 2)
	return []pfRow{
		{name: "1 new TCP conns/s, bridge+netpol vs bridge", unit: "conn/s", side: r[0], base: r[1]},
		{name: "1f the floor: bridge+conntrack rule vs bridge", unit: "conn/s", side: r[2], base: r[1]},
		{name: "1n bridge+netpol vs the floor", unit: "conn/s", side: r[0], base: r[2]},
	}
}

// throughput is row 2: one TCP stream's throughput.
func (p *pfBench) throughput(b *testing.B) []pfRow {
	r := p.pfRates(b, "send", 0, 1)
	side, base := r[0], r[1]
	for i := range side {
		side[i], base[i] = side[i]/1e9, base[i]/1e9
	}
	name := "2 bulk throughput, same pair (netpol-traffic send)"
	if p.iperf {
		name = "2 bulk throughput, same pair (iperf3)"
	}
	return []pfRow{{name: name, unit: "Gbit/s", side: side, base: base}}
}

// cniAdd is row 3: the whole chain's ADD through the real cnitool, a new
// sandbox of a known local pod each time (DEL after each, not timed).
func (p *pfBench) cniAdd(b *testing.B) []pfRow {
	b.Helper()
	chains := []*bnChain{p.netpol, p.bridge}
	local := p.large.LocalPods()
	var side, base []float64
	for i := range pfPairs() {
		lp := local[i%len(local)]
		var got [2]float64
		for k := range 2 {
			j := (i + k) % 2
			_, netns, err := chains[j].node.NewPodNetNS()
			if err != nil {
				b.Fatal(err)
			}
			d, err := chains[j].cnitool("add", netns, lp.Namespace, lp.Name)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := chains[j].cnitool("del", netns, lp.Namespace, lp.Name); err != nil {
				b.Fatal(err)
			}
			got[j] = bnMs(d)
		}
		side, base = append(side, got[0]), append(base, got[1])
	}
	return []pfRow{{name: "3 whole-chain CNI ADD (cnitool), bridge+netpol vs bridge", unit: "ms", side: side, base: base}}
}

// netpolAdd is row 4: netpol's own ADD process, invoked as libcni does, on
// the large snapshot vs the empty one (DEL after each, not timed).
func (p *pfBench) netpolAdd(b *testing.B) []pfRow {
	b.Helper()
	nodes := []*node.Node{p.netpol.node, p.empty}
	var netns [2]string
	for j, n := range nodes {
		var err error
		if _, netns[j], err = n.NewPodNetNS(); err != nil {
			b.Fatal(err)
		}
	}
	local := p.large.LocalPods()
	var side, base []float64
	for i := range 3 * pfPairs() {
		lp := local[i%len(local)]
		var got [2]float64
		for k := range 2 {
			j := (i + k) % 2
			d, err := pfPluginAdd(nodes[j], lp.Namespace, lp.Name, netns[j], fmt.Sprintf("10.244.1.%d", 200+i%50))
			if err != nil {
				b.Fatal(err)
			}
			got[j] = bnMs(d)
		}
		side, base = append(side, got[0]), append(base, got[1])
	}
	return []pfRow{{name: "4 netpol's own ADD, large snapshot vs empty", unit: "ms", side: side, base: base, percents: true}}
}

// pfPluginAdd runs bin/netpol ADD for pod namespace/name with address ip
// in node n, as libcni would, and returns its wall time; then DEL (not
// timed), so the node keeps only its own pods.
func pfPluginAdd(n *node.Node, namespace, name, netns, ip string) (time.Duration, error) {
	cid, err := node.NewContainerID()
	if err != nil {
		return 0, err
	}
	args := node.PodArgs{Namespace: namespace, Name: name, ContainerID: cid, NetNSPath: netns, IfName: "eth0"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = n.InvokePlugin(ctx, "ADD", "netpol", args, bnPrevResult(ip, netns))
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: ADD %s/%s: %w", n.NetNS, namespace, name, err)
	}
	if _, err := n.InvokePlugin(ctx, "DEL", "netpol", args, nil); err != nil {
		return 0, fmt.Errorf("%s: DEL %s/%s: %w", n.NetNS, namespace, name, err)
	}
	return d, nil
}

// pfStats is min, median and max of v.
func pfStats(v []float64) (lo, med, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], med, s[len(s)-1]
}

// pfPercentile is the nearest-rank p-th percentile of v (0 < p <= 100).
func pfPercentile(v []float64, p float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// pfNum formats a figure in 8 columns, without exponents.
func pfNum(v float64) string {
	if math.Abs(v) >= 1000 {
		return fmt.Sprintf("%8.0f", v)
	}
	return fmt.Sprintf("%8.4g", v)
}

// ratios is side[i]/base[i] for each pair.
func (r pfRow) ratios() []float64 {
	out := make([]float64, len(r.side))
	for i := range r.side {
		out[i] = r.side[i] / r.base[i]
	}
	return out
}

// pfPrint prints the table to stdout (the testing package keeps only 10
// lines of a benchmark's log) and reports each row's median ratio and
// medians as metrics of a sub-benchmark, for benchstat.
func pfPrint(b *testing.B, log bnLog, rows []pfRow) {
	log.add("%-58s %-7s %-26s  %-26s  %-20s  %s", "row", "unit", "netpol side min/med/max", "baseline min/med/max", "ratio min/med/max", "pairs")
	for _, r := range rows {
		ratios := r.ratios()
		s0, s1, s2 := pfStats(r.side)
		b0, b1, b2 := pfStats(r.base)
		r0, r1, r2 := pfStats(ratios)
		log.add("%-58s %-7s %s %s %s  %s %s %s  %6.2f %6.2f %6.2f  %d", r.name, r.unit,
			pfNum(s0), pfNum(s1), pfNum(s2), pfNum(b0), pfNum(b1), pfNum(b2), r0, r1, r2, len(ratios))
		if r.percents {
			q := func(v []float64) string {
				f := func(x float64) string { return strings.TrimSpace(pfNum(x)) }
				return fmt.Sprintf("p50 %s p90 %s p99 %s max %s", f(pfPercentile(v, 50)), f(pfPercentile(v, 90)), f(pfPercentile(v, 99)), f(slices.Max(v)))
			}
			log.add("%-58s %-7s netpol side %s; baseline %s", "", r.unit, q(r.side), q(r.base))
		}
	}
	fmt.Printf("\n%s\n\n", strings.Join(log, "\n"))
	for _, r := range rows {
		_, med, _ := pfStats(r.ratios())
		_, s, _ := pfStats(r.side)
		_, bl, _ := pfStats(r.base)
		bnReport(b, "row="+strings.Fields(r.name)[0], nil,
			bnMetric{med, "x_baseline"}, bnMetric{s, r.unit}, bnMetric{bl, "base_" + r.unit})
	}
}
