package integration

// The agent rows of BenchmarkPerf: --once cold, warm and after one label
// change (row 5); a running agent's label and policy changes to the kernel
// (row 6); ADD under a running agent (row 7); the agent's peak RSS (row 8).
// The large world's node ("agent") is paired with the small world's
// ("small") everywhere but in row 7, whose baseline is an idle ADD.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/state"
)

const (
	pfChanges     = 20               // changes of each kind in row 6
	pfChangeWait  = 2 * time.Minute  // a change not in the kernel by then fails the run
	pfLoadedAdds  = 100              // ADD pairs of row 7, at most
	pfLoadedFor   = 45 * time.Second // ... or for at most this long
	pfRepairEvery = "1s"             // the running agents' --repair-interval
	// pfPoll is the running agents' --poll: how often a manifest agent
	// looks at its directory. Row 6 times a change from the file write to
	// the kernel, so the default 200 ms poll would add ~100 ms of waiting
	// to every change; 10 ms keeps the sync itself what is measured.
	pfPoll         = "10ms"
	pfChangeEvery  = time.Second // row 7: one label change this often
	pfAgentStartIn = 2 * time.Minute
	pfOncePairs    = 5 // row 5: each pair is eight agent runs
)

// pfRunOnce times `netpol-agent --manifests dir --once` in n, end to end.
func pfRunOnce(b *testing.B, n *node.Node, dir string) time.Duration {
	b.Helper()
	start := time.Now()
	out, err := n.RunAgent("--manifests", dir, "--once")
	d := time.Since(start)
	if err != nil {
		b.Fatalf("agent: %v\n%s", err, out)
	}
	return d
}

// pfCold leaves n as a node whose kernel holds nothing of netpol, with its
// local pods recorded as CNI ADD would have (--uninstall empties the data
// directory, records included).
func pfCold(b *testing.B, n *node.Node, m *pfManifests) {
	b.Helper()
	if out, err := n.RunAgent("--uninstall"); err != nil {
		b.Fatalf("uninstall: %v\n%s", err, out)
	}
	st := state.New(n.DataDir)
	for _, a := range m.c.Attachments(len(m.c.LocalPods())) {
		if err := st.WriteAttachment(&a); err != nil {
			b.Fatal(err)
		}
	}
}

// pfReboot leaves n as a reboot would: the kernel holds nothing of netpol,
// and the data directory is what the last sync left on disk (snapshot,
// index, pod records, the decoded manifests' cache), kept aside while
// --uninstall empties the kernel and the directory, then put back.
func pfReboot(b *testing.B, n *node.Node) {
	b.Helper()
	keep := filepath.Join(b.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", n.DataDir, keep).CombinedOutput(); err != nil {
		b.Fatalf("keep the data directory: %v: %s", err, out)
	}
	if out, err := n.RunAgent("--uninstall"); err != nil {
		b.Fatalf("uninstall: %v\n%s", err, out)
	}
	if err := os.RemoveAll(n.DataDir); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", keep, n.DataDir).CombinedOutput(); err != nil {
		b.Fatalf("put the data directory back: %v: %s", err, out)
	}
}

// agentOnce is row 5: --once on a node whose kernel holds no policy state
// and whose data directory is empty but for the pod records (cold: a first
// start), again with nothing changed (warm), after one label change of a
// pod on another node, and after a reboot (the kernel empty, the data
// directory kept).
func (p *pfBench) agentOnce(b *testing.B) []pfRow {
	b.Helper()
	nodes := [2]*node.Node{p.agent, p.smallN}
	ms := [2]*pfManifests{p.agentM, p.smallM}
	steps := []string{"cold", "warm", "label", "reboot"}
	var got [4][2][]float64
	for i := range pfOncePairs {
		for j := range 2 {
			pfCold(b, nodes[j], ms[j])
		}
		for s, step := range steps {
			switch step {
			case "label":
				for _, m := range ms {
					if err := m.toggleLabel(); err != nil {
						b.Fatal(err)
					}
				}
			case "reboot":
				for _, n := range nodes {
					pfReboot(b, n)
				}
			}
			for k := range 2 {
				j := (i + k) % 2
				got[s][j] = append(got[s][j], bnMs(pfRunOnce(b, nodes[j], ms[j].dir)))
			}
		}
	}
	names := []string{"5a agent --once cold, large vs small world", "5b agent --once warm (nothing changed)",
		"5c agent --once after one label change (other node)", "5d agent --once after a reboot (kernel empty, data dir kept)"}
	var rows []pfRow
	for s := range steps {
		rows = append(rows, pfRow{name: names[s], unit: "ms", side: got[s][0], base: got[s][1]})
	}
	return rows
}

// pfStartAgent starts a long-running agent on n and waits for its first
// sync.
func pfStartAgent(b *testing.B, n *node.Node, dir string) *node.Agent {
	b.Helper()
	a, err := n.StartAgent("--manifests", dir, "--repair-interval", pfRepairEvery, "--poll", pfPoll)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(pfAgentStartIn)
	for !strings.Contains(a.Output(), "msg=synced") {
		if time.Now().After(deadline) {
			b.Fatalf("%s: agent not synced after %v:\n%s", n.NetNS, pfAgentStartIn, a.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a
}

// pfLabelSets learns which sets the label edit of m changes on n: the
// membership of the edited pod's address in each, for both states of the
// edit. It toggles the label twice and leaves it as it found it.
func pfLabelSets(b *testing.B, n *node.Node, m *pfManifests) map[bool]map[string]bool {
	b.Helper()
	ip := m.labelIP()
	before, err := pfSetsWith(n, ip)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.toggleLabel(); err != nil {
		b.Fatal(err)
	}
	// Wait for a change, then for three equal reads in a row: sets grow
	// before the rules change and shrink after.
	var after map[string]bool
	deadline := time.Now().Add(pfChangeWait)
	for same := 0; same < 3; {
		if time.Now().After(deadline) {
			b.Fatalf("%s: the label edit of %s changed no set in %v", n.NetNS, ip, pfChangeWait)
		}
		time.Sleep(250 * time.Millisecond)
		now, err := pfSetsWith(n, ip)
		if err != nil {
			b.Fatal(err)
		}
		switch {
		case fmt.Sprint(now) == fmt.Sprint(before):
		case fmt.Sprint(now) == fmt.Sprint(after):
			same++
		default:
			after, same = now, 1
		}
	}
	want := map[bool]map[string]bool{true: {}, false: {}}
	for set := range before {
		if !after[set] {
			want[!m.labelled][set], want[m.labelled][set] = true, false
		}
	}
	for set := range after {
		if !before[set] {
			want[m.labelled][set], want[!m.labelled][set] = true, false
		}
	}
	if err := m.toggleLabel(); err != nil {
		b.Fatal(err)
	}
	if _, err := pfWaitSets(n, ip, want[m.labelled], time.Now(), pfChangeWait); err != nil {
		b.Fatal(err)
	}
	return want
}

// pfPolicyChange makes the policy edit of m and waits until n's rules show
// it; it returns the latency from the edited file's rename into the
// directory (the YAML encoding before is the harness's, not the agent's).
func pfPolicyChange(b *testing.B, n *node.Node, m *pfManifests) float64 {
	b.Helper()
	gen0, err := pfGen(n)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.togglePolicy(); err != nil {
		b.Fatal(err)
	}
	d, err := pfWaitRule(n, gen0, m.opened, m.renamed, pfChangeWait)
	if err != nil {
		b.Fatal(err)
	}
	return bnMs(d)
}

// pfLabelChange makes the label edit of m and waits until n's sets show
// it; it returns the latency from the edited file's rename into the
// directory.
func pfLabelChange(b *testing.B, n *node.Node, m *pfManifests, want map[bool]map[string]bool) float64 {
	b.Helper()
	if err := m.toggleLabel(); err != nil {
		b.Fatal(err)
	}
	d, err := pfWaitSets(n, m.labelIP(), want[m.labelled], m.renamed, pfChangeWait)
	if err != nil {
		b.Fatal(err)
	}
	return bnMs(d)
}

// live is rows 6, 7 and 8, on running agents (manifest mode, repairing
// every second).
func (p *pfBench) live(b *testing.B) []pfRow {
	b.Helper()
	nodes := [2]*node.Node{p.agent, p.smallN}
	ms := [2]*pfManifests{p.agentM, p.smallM}
	var agents [2]*node.Agent
	var want [2]map[bool]map[string]bool
	for j := range 2 {
		agents[j] = pfStartAgent(b, nodes[j], ms[j].dir)
		want[j] = pfLabelSets(b, nodes[j], ms[j])
		pfPolicyChange(b, nodes[j], ms[j]) // and back: the rule read-back works
		pfPolicyChange(b, nodes[j], ms[j])
	}
	var label, pol [2][]float64
	for i := range pfChanges {
		if !p.rows[6] {
			break
		}
		for k := range 2 {
			j := (i + k) % 2
			label[j] = append(label[j], pfLabelChange(b, nodes[j], ms[j], want[j]))
		}
		for k := range 2 {
			j := (i + k) % 2
			pol[j] = append(pol[j], pfPolicyChange(b, nodes[j], ms[j]))
		}
	}
	var rows []pfRow
	if p.rows[6] {
		rows = append(rows,
			pfRow{name: "6a running agent: label change to the sets, large vs small", unit: "ms", side: label[0], base: label[1], percents: true},
			pfRow{name: "6b running agent: policy change to the rules, large vs small", unit: "ms", side: pol[0], base: pol[1], percents: true})
	}
	if p.rows[7] {
		rows = append(rows, p.loadedAdd(b, agents[0]))
	}
	// Let the last change of row 7 land before SIGTERM, then note (not
	// fail on) an agent that does not stop in time.
	if _, err := pfWaitSets(nodes[0], ms[0].labelIP(), want[0][ms[0].labelled], time.Now(), pfChangeWait); err != nil {
		b.Fatal(err)
	}
	var rss [2]float64
	for j, a := range agents {
		rss[j] = pfPeakRSS(b, a.PID)
		if err := a.Stop(); err != nil {
			p.log.add("note: %s's agent: %v", []string{"large", "small"}[j], err)
		}
	}
	rows = append(rows, pfRow{name: "8 running agent's peak RSS, large vs small world", unit: "MiB", side: rss[:1], base: rss[1:]})
	return rows
}

// loadedAdd is row 7: netpol's ADD on the node whose agent runs on the
// large world, repairs every second and gets a label change every second,
// paired with an ADD on the netpol node of the traffic rows (same world,
// no agent running). What the agent did meanwhile is noted under the
// table (pfLoadWatch).
func (p *pfBench) loadedAdd(b *testing.B, agent *node.Agent) pfRow {
	b.Helper()
	nodes := []*node.Node{p.agent, p.netpol.node}
	var netns [2]string
	for j, n := range nodes {
		var err error
		if _, netns[j], err = n.NewPodNetNS(); err != nil {
			b.Fatal(err)
		}
	}
	toggler, err := p.agentM.labelToggler()
	if err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var changeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(pfChangeEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if err := toggler.toggle(); err != nil {
					changeErr = err
					return
				}
			}
		}
	}()
	local := p.large.LocalPods()
	var side, base []float64
	watch := pfWatchLoad(agent, p.agent)
	start := time.Now()
	for i := 0; i < pfLoadedAdds && time.Since(start) < pfLoadedFor; i++ {
		lp := local[i%len(local)]
		var got [2]float64
		for k := range 2 {
			j := (i + k) % 2
			t0 := time.Now()
			d, err := pfPluginAdd(nodes[j], lp.Namespace, lp.Name, netns[j], fmt.Sprintf("10.244.1.%d", 200+i%50))
			if err != nil {
				close(stop)
				wg.Wait()
				b.Fatal(err)
			}
			if j == 0 {
				watch.add(t0, d)
			}
			got[j] = bnMs(d)
		}
		side, base = append(side, got[0]), append(base, got[1])
	}
	for _, l := range watch.notes() {
		p.log.add("%s", l)
	}
	close(stop)
	wg.Wait()
	if changeErr != nil {
		b.Fatal(changeErr)
	}
	return pfRow{name: "7 netpol's ADD under a running agent vs idle", unit: "ms", side: side, base: base, percents: true}
}

// pfPeakRSS is the peak resident set size of process pid in MiB (VmHWM).
func pfPeakRSS(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
