package integration

// SIGKILL at any point of the agent's sync of a large snapshot, and of the
// plugin's ADD and DEL, while a denied pod probes an isolated one without
// pause: the probe never gets through, and after a restart (or the
// runtime's retry) the node converges and nothing leaks.
//
// The agent's kill points are exact, with no hook in netpol: the agent runs
// with a PATH whose ipset and iptables* are wrappers (killShim) that count
// the commands of a sync and freeze it at the N-th one, before it runs,
// after it fed the command half its input (as if the command was killed with
// the agent), or after it ran, so the test can kill the agent exactly there.
// The agent makes its set restores in process, over netlink (ipt's
// netlinkRestore), so no wrapper sees them: kills timed over whole runs
// land in them.

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/policy/testsnap"
	"github.com/netpol/netpol/state"
)

// killCluster is the cluster of the agent kill test: 3,000 pods, 100 of
// them on this node, 300 policies.
func killCluster(n *node.Node) *testsnap.Cluster {
	return testsnap.Generate(testsnap.Config{Seed: 1, Node: n.Name, Nodes: 30, Namespaces: 30, Pods: 3000, LocalPods: 100, Policies: 300})
}

// killWorlds writes two versions of killCluster into new directories, each
// with namespace default, this node's real pods web, db and other, and a
// policy that lets only web reach db (a different one in each version). The
// second version has every other policy removed and every third pod's tier
// changed, so that a sync from one to the other grows and shrinks sets and
// adds or deletes chains.
func killWorlds(t *testing.T, n *node.Node) []string {
	t.Helper()
	var dirs []string
	for v := 0; v < 2; v++ {
		c := killCluster(n)
		if v == 1 {
			var kept []networkingv1.NetworkPolicy
			for i, pol := range c.Policies {
				if i%2 == 0 {
					kept = append(kept, pol)
				}
			}
			c.Policies = kept
			for i := range c.Pods {
				if i%3 == 0 && c.Pods[i].Labels["tier"] != "" {
					c.Pods[i].Labels["tier"] += "-moved"
				}
			}
		}
		dir := t.TempDir()
		if err := c.WriteManifests(dir); err != nil {
			t.Fatal(err)
		}
		// db is isolated in both versions, by a policy of another name and
		// selector in each: a sync between them swaps its chains and sets.
		dbPolicy := dbPolicyYAML("default")
		if v == 1 {
			dbPolicy = strings.Replace(strings.Replace(dbPolicy, "name: db-from-web", "name: data-from-web", 1),
				"podSelector:\n    matchLabels:\n      app: db", "podSelector:\n    matchLabels:\n      tier: data", 1)
			if !strings.Contains(dbPolicy, "tier: data") {
				t.Fatalf("policy variant not made:\n%s", dbPolicy)
			}
		}
		writeManifest(t, dir, "50-default.yaml", yamlDocs(podsYAML(map[string]string{
			"default/web": "app=web", "default/db": "app=db,tier=data", "default/other": "app=other",
		}), dbPolicy))
		dirs = append(dirs, dir)
	}
	return dirs
}

// killRecords writes the CNI records of killCluster's local pods into n's
// data dir, as ADD would have, with addresses 10.244.1.120 and up (clear of
// the few real pods host-local gives .2 onwards).
func killRecords(t *testing.T, n *node.Node) int {
	t.Helper()
	st := state.New(n.DataDir)
	atts := killCluster(n).Attachments(100)
	for i := range atts {
		atts[i].IPs = []string{fmt.Sprintf("10.244.1.%d", 120+i)}
		if err := st.WriteAttachment(&atts[i]); err != nil {
			t.Fatal(err)
		}
	}
	return len(atts)
}

// killAgentAt starts an agent on dir with the wrappers armed at the at-th
// command in mode, lets the probe run against the state it froze in, and
// SIGKILLs it there (mode hold: releases it and kills it after delay). It
// reports whether the sync reached that command.
func killAgentAt(t *testing.T, n *node.Node, s *killShim, p *killProbe, dir string, at int, mode string, delay time.Duration) bool {
	t.Helper()
	s.arm(t, at, mode)
	p.at.Store(fmt.Sprintf("%s command %d (+%v)", mode, at, delay))
	a, err := n.StartAgent("--manifests", dir, "--node-name", n.Name)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	var paused bool
	if _, ok := waitFor(60*time.Second, 5*time.Millisecond, func() bool {
		pid, paused = s.paused()
		return paused || strings.Contains(a.Output(), "msg=synced")
	}); !ok {
		t.Fatalf("agent neither synced nor reached command %d within 60s:\n%s", at, a.Output())
	}
	switch {
	case paused && mode == "hold":
		writeManifest(t, s.dir, "release", "")
		time.Sleep(delay)
	case paused:
		// The probe gets this frozen state to itself for a while.
		time.Sleep(100 * time.Millisecond)
	}
	killAgent(t, a)
	switch {
	case paused && mode == "hold":
		// Released, it exits by itself: wait, so that the next arm does
		// not take its release away.
		if _, ok := waitFor(10*time.Second, 5*time.Millisecond, func() bool { return syscall.Kill(pid, 0) != nil }); !ok {
			t.Errorf("released wrapper %d still runs", pid)
		}
	case paused:
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Errorf("kill paused wrapper %d: %v", pid, err)
		}
	}
	return paused
}

// killAgent SIGKILLs a and reaps it.
func killAgent(t *testing.T, a *node.Agent) {
	t.Helper()
	if err := a.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait(5 * time.Second)
	_ = a.Stop() // reaped: nothing for the node's Close to stop
}

func TestAgentKilledAnywhere(t *testing.T) {
	n := newNode(t, node.Options{})
	worlds := killWorlds(t, n)
	records := killRecords(t, n)
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	db, other := pods[1], pods[2]
	syncOnce(t, n, worlds[0])
	toDB := []*node.Pod{db}
	expectMatrix(t, "before the kills", pods, toDB, "default/web>default/db")

	s := newKillShim(t)
	n.AgentEnv = []string{"PATH=" + s.bin + ":" + os.Getenv("PATH")}
	p := startKillProbe(other, db.IP)
	defer func() {
		select {
		case <-p.stop:
		default:
			p.finish()
		}
	}()

	// One whole start-up sync, from world 0 to world 1, to learn its
	// commands and its length.
	s.arm(t, 0, "none")
	start := time.Now()
	a := startAgent(t, n, worlds[1])
	wall := time.Since(start)
	killAgent(t, a)
	commands := s.log(t)
	t.Logf("a start-up sync: %v wall, %d commands:\n%s", wall, len(commands), strings.Join(commands, "\n"))

	// Before every command of a sync, and half-way through every restore,
	// each sync heading to the world the previous one did not reach (after
	// a command is before the next one).
	points, reached, w := 0, 0, 0
	var missed []string // points a sync did not reach: one in the other direction may run fewer commands
	for at := 1; at <= len(commands); at++ {
		modes := []string{"before"}
		if strings.Contains(commands[at-1], "restore") {
			modes = append(modes, "mid")
		}
		for _, mode := range modes {
			points++
			// A sync that did not reach the point completed: the one after
			// it, heading to the other world, is a whole one. (With
			// iptables-nft the families run side by side, so a kill often
			// leaves one family in the new world: the next sync is short.)
			ok := killAgentAt(t, n, s, p, worlds[w%2], at, mode, 0)
			if w++; !ok {
				ok = killAgentAt(t, n, s, p, worlds[w%2], at, mode, 0)
				w++
			}
			if ok {
				reached++
			} else {
				missed = append(missed, fmt.Sprintf("%s %d", mode, at))
			}
		}
	}
	commandPoints := reached
	// After the last command, at delays spread over the writing of the
	// snapshot, index and record of the sync. (A sync that finds one
	// family in the new world already runs fewer commands and is not held.)
	write := killPhase(t, a.Output(), "write")
	held := 0
	for i := 0; i <= 8; i++ {
		points++
		if killAgentAt(t, n, s, p, worlds[w%2], len(commands), "hold", write*time.Duration(i)/8) {
			reached++
			held++
		} else {
			missed = append(missed, fmt.Sprintf("hold %d +%d/8", len(commands), i))
		}
		w++
	}
	// And at delays spread over a whole run: start-up, manifest load and
	// compile included, and the sets' changes, which the Runner makes in
	// process, over netlink, with no command to freeze them at (~1 in 16
	// of the wall time here).
	s.arm(t, 0, "none")
	const timed = 16
	for i := 0; i <= timed; i++ {
		p.at.Store(fmt.Sprintf("%d/%d of a sync's wall time", i, timed))
		a, err := n.StartAgent("--manifests", worlds[w%2], "--node-name", n.Name)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(wall * time.Duration(i) / timed)
		killAgent(t, a)
		points++
		w++
	}

	// Restart: converge on the last world, as a fresh --once would make it.
	n.AgentEnv = nil
	p.at.Store("restart")
	final := worlds[w%2]
	a = startAgent(t, n, final)
	if err := a.Stop(); err != nil {
		t.Errorf("agent after restart: %v\n%s", err, a.Output())
	}
	p.finish()
	t.Logf("%d kill points (%d of %d command points reached; not reached, killed after the sync: %v), %d probes sent, %d got through",
		points, reached, points-timed-1, missed, p.sent.Load(), p.passed.Load())
	if p.passed.Load() > 0 {
		t.Errorf("a denied pod reached an isolated one %d times, at: %v", p.passed.Load(), slices.Compact(p.breaches))
	}
	if p.sent.Load() == 0 {
		t.Error("the probe sent nothing")
	}
	if commandPoints < points-timed-1-9 || held == 0 {
		t.Errorf("only %d of %d command points were reached, %d of 9 holds (not: %v)", commandPoints, points-timed-1-9, held, missed)
	}
	killConverged(t, n, final, pods, toDB, records)
}

// killConverged checks node n after the kills: traffic is as policy says;
// rules and sets are what a fresh --once makes of dir, with no temporary
// set; chains, sets and state files are those of a node that was never
// killed; no process is left in the node's network namespace.
func killConverged(t *testing.T, n *node.Node, dir string, pods, toDB []*node.Pod, records int) {
	t.Helper()
	expectMatrix(t, "after the restart", pods, toDB, "default/web>default/db")
	rules, sets := enforcedRules(t, n), nodeSets(t, n)
	syncOnce(t, n, dir)
	if again := enforcedRules(t, n); again != rules {
		t.Errorf("a fresh --once changed the rules the restarted agent left")
	}
	if again := nodeSets(t, n); !reflect.DeepEqual(again, sets) {
		for name := range again {
			if !reflect.DeepEqual(again[name], sets[name]) {
				t.Errorf("a fresh --once changed set %s: %d -> %d members", name, len(sets[name]), len(again[name]))
			}
		}
		for name := range sets {
			if _, ok := again[name]; !ok {
				t.Errorf("a fresh --once removed set %s", name)
			}
		}
	}
	for name := range sets {
		if strings.HasPrefix(name, "NETPOL-TMP-") {
			t.Errorf("temporary set %s left", name)
		}
	}
	ref := newNode(t, node.Options{Name: n.Name})
	killRecords(t, ref)
	syncOnce(t, ref, dir)
	if got, want := killOwned(t, n), killOwned(t, ref); !reflect.DeepEqual(got, want) {
		t.Errorf("chains and sets differ from a node never killed:\ngot  %v\nwant %v", got, want)
	}
	if got, want := killDataFiles(t, n), killDataFiles(t, ref); !reflect.DeepEqual(got, want) {
		t.Errorf("data dir differs from a node never killed:\ngot  %v\nwant %v", got, want)
	}
	if recs := podRecords(t, n); len(recs) != len(pods)+records {
		t.Errorf("%d pod records, want %d", len(recs), len(pods)+records)
	}
	if _, ok := waitFor(10*time.Second, 50*time.Millisecond, func() bool { return len(killProcsIn(t, n)) == 0 }); !ok {
		t.Errorf("processes left in the node's network namespace: %v", killProcsIn(t, n))
	}
}

// killPhase returns the duration of a sync phase ("compile", "apply",
// "write") in an agent's log of one sync.
func killPhase(t *testing.T, log, phase string) time.Duration {
	t.Helper()
	for _, f := range strings.Fields(log) {
		if v, ok := strings.CutPrefix(f, phase+"="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s=%q in the agent's log: %v", phase, v, err)
			}
			return d
		}
	}
	t.Fatalf("no %s= in the agent's log:\n%s", phase, log)
	return 0
}

// killOwned returns the names of our chains and sets, sorted.
func killOwned(t *testing.T, n *node.Node) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(iptablesSave(t, n), "\n") {
		if name, ok := strings.CutPrefix(l, ":NETPOL"); ok {
			out = append(out, "chain NETPOL"+strings.Fields(name)[0])
		}
	}
	for name := range nodeSets(t, n) {
		if strings.HasPrefix(name, "NETPOL") {
			out = append(out, "set "+name)
		}
	}
	slices.Sort(out)
	return out
}

// killDataFiles lists the data dir, pod records, the logs (the plugin's,
// and the drop records of the long-running agent) and the rules proof
// aside.
func killDataFiles(t *testing.T, n *node.Node) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(n.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(n.DataDir, path)
		// rules-proof: left by a read-back that found the rules in force,
		// which a restarted agent may make and a fresh one does not.
		if d.IsDir() || strings.HasPrefix(rel, "pods/") || rel == "netpol.log" || strings.HasPrefix(rel, "drops/") || rel == "rules-proof" {
			return nil
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// killProcsIn returns the processes whose network namespace is the node's.
func killProcsIn(t *testing.T, n *node.Node) []string {
	t.Helper()
	want, err := os.Stat(n.NetNSPath)
	if err != nil {
		t.Fatal(err)
	}
	wantIno := want.Sys().(*syscall.Stat_t).Ino
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		st, err := os.Stat(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err != nil || st.Sys().(*syscall.Stat_t).Ino != wantIno {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return out
}
