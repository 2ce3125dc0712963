package integration

// The netpol-agent binary on a real node: the long-running loop (changes
// within a second, repair of what others removed, invalid input keeps the
// last good state, SIGTERM, kill -9 and restart) and bad input with --once.
// CNI ADD/DEL racing with syncs is in race_test.go.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// startAgent starts a long-running agent on dir and waits (bounded) until
// its start-up sync is done.
func startAgent(t *testing.T, n *node.Node, dir string) *node.Agent {
	t.Helper()
	a, err := n.StartAgent("--manifests", dir, "--node-name", n.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := waitFor(10*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(a.Output(), "msg=synced")
	}); !ok {
		t.Fatalf("agent pid %d did not sync within 10s:\n%s", a.PID, a.Output())
	}
	return a
}

// dataFiles returns the bytes of the agent's state files.
func dataFiles(t *testing.T, n *node.Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"snapshot.json", "index"} {
		out[f] = string(readFileIfAny(t, filepath.Join(n.DataDir, f)))
	}
	return out
}

func TestAgentLongRunning(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "",
	}))
	// Added before any agent ran: denied until the agent's start-up sync.
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	r := &longRun{t: t, n: n, dir: dir, pods: pods, web: pods[0], db: pods[1], other: pods[2]}
	r.a = startAgent(t, n, dir)
	expectMatrix(t, "agent started, no policy", pods, pods, allPairs(node.Labels(pods)...)...)
	r.withPolicy = []string{
		"default/web>default/db", "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web",
	}
	r.policyFileTakesEffect()
	r.good = enforcedRules(t, n)
	r.repairsTampering()
	r.keepsLastGoodOnInvalidInput()
	r.exitsOnSIGTERM()
	r.convergesAfterKill9()
}

// longRun is the node of TestAgentLongRunning: web, db and other in
// default, the running agent a, and the rules it enforces with the policy
// db-from-web (good) and the traffic they allow (withPolicy).
type longRun struct {
	t              *testing.T
	n              *node.Node
	dir            string
	a              *node.Agent
	pods           []*node.Pod
	web, db, other *node.Pod
	good           string
	withPolicy     []string
}

// policyFileTakesEffect: a new policy file takes effect in traffic within a
// second.
func (r *longRun) policyFileTakesEffect() {
	t, dir, a, pods, db, other := r.t, r.dir, r.a, r.pods, r.db, r.other
	written := time.Now()
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	var latency time.Duration
	_, ok := waitFor(3*time.Second, 10*time.Millisecond, func() bool {
		start := time.Now()
		if node.ProbeOnce(other, db.IP, "tcp", servePort, 100*time.Millisecond) == nil {
			return false
		}
		latency = start.Sub(written)
		return true
	})
	if !ok {
		t.Fatalf("policy file not in effect after 3s:\n%s", a.Output())
	}
	t.Logf("policy file to effect in traffic: %v", latency)
	if latency > 1500*time.Millisecond {
		t.Errorf("policy file took %v to take effect, want <= 1s (1.5s with margin)", latency)
	}
	expectMatrix(t, "policy applied by the running agent", pods, pods, r.withPolicy...)
}

// repairsTampering: someone deletes our hook, flushes our chains and sets,
// and destroys one: repaired within 10 s.
func (r *longRun) repairsTampering() {
	t, n, a, pods, web, db, other, good := r.t, r.n, r.a, r.pods, r.web, r.db, r.other, r.good
	sets := nodeSets(t, n)
	group4 := wantSets(t, sets, "db", db.IP, "NETPOL4-GI-")[0]
	peer4 := wantSets(t, sets, "web", web.IP, "NETPOL4-P-")[0]
	group6 := "NETPOL6-GI-" + strings.TrimPrefix(group4, "NETPOL4-GI-")
	if _, ok := sets[group6]; !ok {
		t.Fatalf("no IPv6 group set %s beside %s", group6, group4)
	}
	execIn(t, n, "iptables", "-w", "-D", "FORWARD", "1")
	execIn(t, n, "iptables", "-w", "-F", "NETPOL-INGRESS")
	execIn(t, n, "ipset", "flush", group4)
	execIn(t, n, "ipset", "flush", peer4)
	// Unreference group6 (the dispatch tree's leaf and the scan chain use
	// it too) so that it can be destroyed.
	for _, ch := range []string{"NETPOL-INGRESS", "NETPOL-TI-0-1", "NETPOL-SCAN-I"} {
		execIn(t, n, "ip6tables", "-w", "-F", ch)
	}
	execIn(t, n, "ipset", "destroy", group6)
	if err := node.ProbeOnce(other, db.IP, "tcp", servePort, denyTimeout); err != nil {
		t.Errorf("with NETPOL-INGRESS flushed, other still cannot reach db: %v", err)
	}
	took, ok := waitFor(12*time.Second, 100*time.Millisecond, func() bool {
		s := nodeSets(t, n)
		_, has6 := s[group6]
		return enforcedRules(t, n) == good && slices.Equal(s[group4], []string{db.IP}) &&
			slices.Equal(s[peer4], []string{web.IP}) && has6
	})
	t.Logf("repaired after %v", took)
	if !ok || took > 10*time.Second {
		t.Errorf("our chains and sets not restored within 10s (ok %v, took %v)", ok, took)
	}
	if !strings.Contains(a.Output(), "repairing") {
		t.Errorf("agent did not log the repair:\n%s", a.Output())
	}
	expectMatrix(t, "repaired", pods, pods, r.withPolicy...)
}

// keepsLastGoodOnInvalidInput: an invalid policy is logged, the last good
// state kept, and the agent keeps running.
func (r *longRun) keepsLastGoodOnInvalidInput() {
	t, n, dir, a, pods, good := r.t, r.n, r.dir, r.a, r.pods, r.good
	files := dataFiles(t, n)
	setsBefore := nodeSets(t, n)
	writeManifest(t, dir, "30-bad.yaml", strings.Replace(
		strings.Replace(dbPolicyYAML("default"), "name: db-from-web", "name: bad-port", 1),
		fmt.Sprintf("port: %d", servePort), "port: 70000", 1))
	if _, ok := waitFor(3*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(a.Output(), "invalid input")
	}); !ok {
		t.Errorf("agent did not log the invalid policy within 3s:\n%s", a.Output())
	}
	time.Sleep(500 * time.Millisecond) // two more polls
	if out := a.Output(); !strings.Contains(out, "70000") {
		t.Errorf("agent log does not name the bad port:\n%s", out)
	}
	select {
	case <-a.Exited():
		t.Fatalf("agent exited on invalid input:\n%s", a.Output())
	default:
	}
	if got := enforcedRules(t, n); got != good {
		t.Errorf("rules changed after invalid input:\n%s\nwant:\n%s", got, good)
	}
	for f, want := range files {
		if got := string(readFileIfAny(t, filepath.Join(n.DataDir, f))); got != want {
			t.Errorf("%s changed after invalid input", f)
		}
	}
	for name, members := range setsBefore {
		if got := nodeSets(t, n)[name]; !slices.Equal(got, members) {
			t.Errorf("set %s changed after invalid input: %v -> %v", name, members, got)
		}
	}
	expectMatrix(t, "after invalid input", pods, pods, r.withPolicy...)
	if err := os.Remove(filepath.Join(dir, "30-bad.yaml")); err != nil {
		t.Fatal(err)
	}
}

// exitsOnSIGTERM: SIGTERM makes the agent exit 0, promptly, leaving the rules.
func (r *longRun) exitsOnSIGTERM() {
	t, n, a := r.t, r.n, r.a
	stopAt := time.Now()
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(5 * time.Second); err != nil {
		t.Errorf("agent after SIGTERM: %v\n%s", err, a.Output())
	}
	t.Logf("SIGTERM to exit: %v", time.Since(stopAt))
	if got := enforcedRules(t, n); got != r.good {
		t.Errorf("rules changed when the agent stopped")
	}
}

// convergesAfterKill9: kill -9 at several points of start-up, then a
// change, then start again: it converges (no stale lock, no leftover
// temporary set) and follows changes.
func (r *longRun) convergesAfterKill9() {
	t, n, dir, pods, db, other := r.t, r.n, r.dir, r.pods, r.db, r.other
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "app=web",
	}))
	for i := 0; i < 5; i++ {
		k, err := n.StartAgent("--manifests", dir, "--node-name", n.Name)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*40) * time.Millisecond)
		if err := k.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := k.Wait(5 * time.Second); err == nil {
			t.Logf("agent %d exited 0 before SIGKILL", i)
		}
		_ = k.Stop() // reaped: nothing for the node's Close to stop
	}
	// A sync killed after its transaction but before the next could learn
	// of it leaves a chain of ours that no ruleset has, hooked into FORWARD:
	// the restarted agent finds it in the kernel and removes it.
	execIn(t, n, "iptables", "-w", "-N", "NETPOL-ORPHAN")
	execIn(t, n, "iptables", "-w", "-A", "NETPOL-ORPHAN", "-j", "ACCEPT")
	execIn(t, n, "iptables", "-w", "-I", "FORWARD", "1", "-j", "NETPOL-ORPHAN")
	restarted := time.Now()
	b := startAgent(t, n, dir)
	if got := enforcedRules(t, n); strings.Contains(got, "NETPOL-ORPHAN") {
		t.Errorf("orphan chain survived the restart:\n%s", got)
	}
	t.Logf("restart after kill -9 synced in %v", time.Since(restarted))
	expectMatrix(t, "restarted after kill -9", pods, pods, allPairs(node.Labels(pods)...)...)
	for _, p := range pods {
		if err := n.CheckPod(p); err != nil {
			t.Errorf("CHECK %s after restart: %v", p.Label(), err)
		}
	}
	for name := range nodeSets(t, n) {
		if strings.HasPrefix(name, "NETPOL-TMP-") {
			t.Errorf("temporary set %s left behind", name)
		}
	}
	// The restarted agent still follows changes.
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "",
	}))
	if _, ok := waitFor(3*time.Second, 20*time.Millisecond, func() bool {
		return node.ProbeOnce(other, db.IP, "tcp", servePort, 100*time.Millisecond) != nil
	}); !ok {
		t.Errorf("restarted agent did not apply a change within 3s")
	}
	expectMatrix(t, "restarted agent follows changes", pods, pods, r.withPolicy...)
	if err := b.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestAgentBadInputOnce(t *testing.T) {
	n := newNode(t, node.Options{})
	good := map[string]string{
		"10-pods.yaml": podsYAML(map[string]string{
			"default/web": "app=web", "default/db": "app=db", "default/other": "",
		}),
		"20-policy.yaml": dbPolicyYAML("default"),
	}
	dir := t.TempDir()
	for name, content := range good {
		writeManifest(t, dir, name, content)
	}
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	syncOnce(t, n, dir)
	rules, files, ipsets := enforcedRules(t, n), dataFiles(t, n), execIn(t, n, "ipset", "list")
	for f, b := range files {
		if b == "" {
			t.Fatalf("%s missing after a good sync", f)
		}
	}

	cases := []struct {
		name, file, content string
		want                []string // stderr must name these
	}{
		{"bad YAML", "30-bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x\n",
			[]string{"30-bad.yaml"}},
		{"unknown kind", "30-deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n",
			[]string{"30-deploy.yaml", "Deployment"}},
		{"invalid policy", "30-policy.yaml", strings.Replace(
			strings.Replace(dbPolicyYAML("default"), "name: db-from-web", "name: bad-port", 1),
			fmt.Sprintf("port: %d", servePort), "port: 70000", 1),
			[]string{"bad-port", "70000"}},
		{"unknown field", "30-field.yaml", strings.Replace(dbPolicyYAML("default"),
			"name: db-from-web", "name: typo", 1) + "  ingres: []\n",
			[]string{"30-field.yaml", "ingres"}},
		{"bad JSON", "30-bad.json", `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}`,
			[]string{"30-bad.json"}},
	}
	for _, c := range cases {
		bad := t.TempDir()
		for name, content := range good {
			writeManifest(t, bad, name, content)
		}
		writeManifest(t, bad, c.file, c.content)
		stdout, stderr, code := runAgentSplit(t, n, "--once", "--manifests", bad, "--node-name", n.Name)
		if code == 0 {
			t.Errorf("%s: --once exited 0\nstdout: %s\nstderr: %s", c.name, stdout, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr does not name %q:\n%s", c.name, w, stderr)
			}
		}
		t.Logf("%s: exit %d: %s", c.name, code, strings.TrimSpace(stderr))
		if got := enforcedRules(t, n); got != rules {
			t.Errorf("%s: iptables-save changed:\n%s\nwant:\n%s", c.name, got, rules)
		}
		for f, want := range files {
			if got := string(readFileIfAny(t, filepath.Join(n.DataDir, f))); got != want {
				t.Errorf("%s: %s changed", c.name, f)
			}
		}
		if got := execIn(t, n, "ipset", "list"); got != ipsets {
			t.Errorf("%s: ipset list changed", c.name)
		}
	}
	expectMatrix(t, "after bad input", pods, pods,
		"default/web>default/db", "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web")
}
