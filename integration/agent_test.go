package integration

// The netpol-agent binary on a real node: the long-running loop (changes
// within a second, repair of what others removed, invalid input keeps the
// last good state, SIGTERM, kill -9 and restart), bad input with --once, and
// CNI ADD/DEL racing with syncs.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// lcStartAgent starts a long-running agent on dir and waits (bounded) until
// its start-up sync is done.
func lcStartAgent(t *testing.T, n *node.Node, dir string) *node.Agent {
	t.Helper()
	a, err := n.StartAgent("--manifests", dir, "--node-name", n.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lcWaitFor(10*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(a.Output(), "msg=synced")
	}); !ok {
		t.Fatalf("agent pid %d did not sync within 10s:\n%s", a.PID, a.Output())
	}
	return a
}

// lcDataFiles returns the bytes of the agent's state files.
func lcDataFiles(t *testing.T, n *node.Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"snapshot.json", "index"} {
		out[f] = string(lcReadFile(t, filepath.Join(n.DataDir, f)))
	}
	return out
}

func TestAgentLongRunning(t *testing.T) {
	n := lcNewNode(t, node.Options{})
	dir := t.TempDir()
	lcWrite(t, dir, "10-pods.yaml", lcPodsYAML(map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "",
	}))
	// Added before any agent ran: denied until the agent's start-up sync.
	pods := lcAddPods(t, n, "default/web", "default/db", "default/other")
	web, db, other := pods[0], pods[1], pods[2]
	a := lcStartAgent(t, n, dir)
	lcExpect(t, "agent started, no policy", pods, pods, lcAll(node.Labels(pods)...)...)
	withPolicy := []string{
		"default/web>default/db", "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web",
	}

	// (a) A new policy file takes effect in traffic within a second.
	written := time.Now()
	lcWrite(t, dir, "20-policy.yaml", lcDBPolicy("default"))
	var latency time.Duration
	_, ok := lcWaitFor(3*time.Second, 10*time.Millisecond, func() bool {
		start := time.Now()
		if node.ProbeOnce(other, db.IP, "tcp", lcPort, 100*time.Millisecond) == nil {
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
	lcExpect(t, "policy applied by the running agent", pods, pods, withPolicy...)
	good := lcRules(t, n)

	// (b) Someone deletes our hook, flushes our chains and sets, and
	// destroys one: repaired within 10 s.
	sets := lcSets(t, n)
	group4 := lcWantSets(t, sets, "db", db.IP, "NETPOL4-GI-")[0]
	peer4 := lcWantSets(t, sets, "web", web.IP, "NETPOL4-P-")[0]
	group6 := "NETPOL6-GI-" + strings.TrimPrefix(group4, "NETPOL4-GI-")
	if _, ok := sets[group6]; !ok {
		t.Fatalf("no IPv6 group set %s beside %s", group6, group4)
	}
	lcExec(t, n, "iptables", "-w", "-D", "FORWARD", "1")
	lcExec(t, n, "iptables", "-w", "-F", "NETPOL-INGRESS")
	lcExec(t, n, "ipset", "flush", group4)
	lcExec(t, n, "ipset", "flush", peer4)
	lcExec(t, n, "ip6tables", "-w", "-F", "NETPOL-INGRESS")
	lcExec(t, n, "ipset", "destroy", group6)
	if err := node.ProbeOnce(other, db.IP, "tcp", lcPort, lcDeny); err != nil {
		t.Errorf("with NETPOL-INGRESS flushed, other still cannot reach db: %v", err)
	}
	took, ok := lcWaitFor(12*time.Second, 100*time.Millisecond, func() bool {
		s := lcSets(t, n)
		_, has6 := s[group6]
		return lcRules(t, n) == good && slices.Equal(s[group4], []string{db.IP}) &&
			slices.Equal(s[peer4], []string{web.IP}) && has6
	})
	t.Logf("repaired after %v", took)
	if !ok || took > 10*time.Second {
		t.Errorf("our chains and sets not restored within 10s (ok %v, took %v)", ok, took)
	}
	if !strings.Contains(a.Output(), "repairing") {
		t.Errorf("agent did not log the repair:\n%s", a.Output())
	}
	lcExpect(t, "repaired", pods, pods, withPolicy...)

	// (c) An invalid policy: logged, last good state kept, agent running.
	files := lcDataFiles(t, n)
	setsBefore := lcSets(t, n)
	lcWrite(t, dir, "30-bad.yaml", strings.Replace(
		strings.Replace(lcDBPolicy("default"), "name: db-from-web", "name: bad-port", 1),
		fmt.Sprintf("port: %d", lcPort), "port: 70000", 1))
	if _, ok := lcWaitFor(3*time.Second, 20*time.Millisecond, func() bool {
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
	if got := lcRules(t, n); got != good {
		t.Errorf("rules changed after invalid input:\n%s\nwant:\n%s", got, good)
	}
	for f, want := range files {
		if got := string(lcReadFile(t, filepath.Join(n.DataDir, f))); got != want {
			t.Errorf("%s changed after invalid input", f)
		}
	}
	for name, members := range setsBefore {
		if got := lcSets(t, n)[name]; !slices.Equal(got, members) {
			t.Errorf("set %s changed after invalid input: %v -> %v", name, members, got)
		}
	}
	lcExpect(t, "after invalid input", pods, pods, withPolicy...)
	if err := os.Remove(filepath.Join(dir, "30-bad.yaml")); err != nil {
		t.Fatal(err)
	}

	// (d) SIGTERM: exit 0, promptly.
	stopAt := time.Now()
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(5 * time.Second); err != nil {
		t.Errorf("agent after SIGTERM: %v\n%s", err, a.Output())
	}
	t.Logf("SIGTERM to exit: %v", time.Since(stopAt))
	if got := lcRules(t, n); got != good {
		t.Errorf("rules changed when the agent stopped")
	}

	// (e) kill -9 at several points of start-up, then a change, then start
	// again: it converges (no stale lock, no leftover temporary set).
	lcWrite(t, dir, "10-pods.yaml", lcPodsYAML(map[string]string{
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
	lcExec(t, n, "iptables", "-w", "-N", "NETPOL-ORPHAN")
	lcExec(t, n, "iptables", "-w", "-A", "NETPOL-ORPHAN", "-j", "ACCEPT")
	lcExec(t, n, "iptables", "-w", "-I", "FORWARD", "1", "-j", "NETPOL-ORPHAN")
	restarted := time.Now()
	b := lcStartAgent(t, n, dir)
	if got := lcRules(t, n); strings.Contains(got, "NETPOL-ORPHAN") {
		t.Errorf("orphan chain survived the restart:\n%s", got)
	}
	t.Logf("restart after kill -9 synced in %v", time.Since(restarted))
	lcExpect(t, "restarted after kill -9", pods, pods, lcAll(node.Labels(pods)...)...)
	for _, p := range pods {
		if err := n.CheckPod(p); err != nil {
			t.Errorf("CHECK %s after restart: %v", p.Label(), err)
		}
	}
	for name := range lcSets(t, n) {
		if strings.HasPrefix(name, "NETPOL-TMP-") {
			t.Errorf("temporary set %s left behind", name)
		}
	}
	// The restarted agent still follows changes.
	lcWrite(t, dir, "10-pods.yaml", lcPodsYAML(map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "",
	}))
	if _, ok := lcWaitFor(3*time.Second, 20*time.Millisecond, func() bool {
		return node.ProbeOnce(other, db.IP, "tcp", lcPort, 100*time.Millisecond) != nil
	}); !ok {
		t.Errorf("restarted agent did not apply a change within 3s")
	}
	lcExpect(t, "restarted agent follows changes", pods, pods, withPolicy...)
	if err := b.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestAgentBadInputOnce(t *testing.T) {
	n := lcNewNode(t, node.Options{})
	good := map[string]string{
		"10-pods.yaml": lcPodsYAML(map[string]string{
			"default/web": "app=web", "default/db": "app=db", "default/other": "",
		}),
		"20-policy.yaml": lcDBPolicy("default"),
	}
	dir := t.TempDir()
	for name, content := range good {
		lcWrite(t, dir, name, content)
	}
	pods := lcAddPods(t, n, "default/web", "default/db", "default/other")
	lcSync(t, n, dir)
	rules, files, ipsets := lcRules(t, n), lcDataFiles(t, n), lcExec(t, n, "ipset", "list")
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
			strings.Replace(lcDBPolicy("default"), "name: db-from-web", "name: bad-port", 1),
			fmt.Sprintf("port: %d", lcPort), "port: 70000", 1),
			[]string{"bad-port", "70000"}},
		{"unknown field", "30-field.yaml", strings.Replace(lcDBPolicy("default"),
			"name: db-from-web", "name: typo", 1) + "  ingres: []\n",
			[]string{"30-field.yaml", "ingres"}},
		{"bad JSON", "30-bad.json", `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}`,
			[]string{"30-bad.json"}},
	}
	for _, c := range cases {
		bad := t.TempDir()
		for name, content := range good {
			lcWrite(t, bad, name, content)
		}
		lcWrite(t, bad, c.file, c.content)
		stdout, stderr, code := lcRunAgentSplit(t, n, "--once", "--manifests", bad, "--node-name", n.Name)
		if code == 0 {
			t.Errorf("%s: --once exited 0\nstdout: %s\nstderr: %s", c.name, stdout, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr does not name %q:\n%s", c.name, w, stderr)
			}
		}
		t.Logf("%s: exit %d: %s", c.name, code, strings.TrimSpace(stderr))
		if got := lcRules(t, n); got != rules {
			t.Errorf("%s: iptables-save changed:\n%s\nwant:\n%s", c.name, got, rules)
		}
		for f, want := range files {
			if got := string(lcReadFile(t, filepath.Join(n.DataDir, f))); got != want {
				t.Errorf("%s: %s changed", c.name, f)
			}
		}
		if got := lcExec(t, n, "ipset", "list"); got != ipsets {
			t.Errorf("%s: ipset list changed", c.name)
		}
	}
	lcExpect(t, "after bad input", pods, pods,
		"default/web>default/db", "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web")
}

func TestConcurrentAddAndSync(t *testing.T) {
	n := lcNewNode(t, node.Options{})
	dir := t.TempDir()
	const total = 12
	labels := map[string]string{}
	keys := make([]string, total)
	for i := range keys {
		keys[i] = fmt.Sprintf("default/p%02d", i)
		labels[keys[i]] = "app=db"
		if i%2 == 1 {
			labels[keys[i]] = "app=web"
		}
	}
	lcWrite(t, dir, "10-pods.yaml", lcPodsYAML(labels))
	lcWrite(t, dir, "20-policy.yaml", lcDBPolicy("default"))
	lcWrite(t, dir, "05-churn.yaml", lcNamespaceYAML("churn"))
	// The agent polls every 20 ms, and the manifests change every 25 ms:
	// it syncs back to back, so ADDs and DELs land in the middle of syncs.
	a, err := n.StartAgent("--manifests", dir, "--node-name", n.Name, "--poll", "20ms")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lcWaitFor(10*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(a.Output(), "msg=synced")
	}); !ok {
		t.Fatalf("agent did not sync within 10s:\n%s", a.Output())
	}

	// Churn: a manifest change every 25 ms, so the agent syncs all along.
	stop := make(chan struct{})
	churned := make(chan int)
	go func() {
		i := 0
		defer func() { churned <- i }()
		for ; i < 1000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond):
			}
			content := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: churn\n  labels:\n    round: \"%d\"\n", i)
			tmp := filepath.Join(dir, ".churn.tmp")
			if os.WriteFile(tmp, []byte(content), 0o644) != nil || os.Rename(tmp, filepath.Join(dir, "05-churn.yaml")) != nil {
				return
			}
		}
	}()
	// And `--once` syncs in a loop, racing with the long-running agent.
	onces := make(chan int)
	go func() {
		i := 0
		defer func() { onces <- i }()
		for ; i < 100; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if out, err := n.RunAgent("--once", "--manifests", dir, "--node-name", n.Name); err != nil {
				t.Errorf("agent --once during the race: %v\n%s", err, out)
				return
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-churned
			<-onces
		}
	}()

	// Pods: p00-p03 are added then deleted, the others added, at most 6
	// CNI calls at a time. A monitor reads `ipset list` all along: a pod
	// whose ADD returned (and whose DEL has not begun) must be in its set,
	// a pod whose DEL returned in none, whatever the syncs do meanwhile.
	const (
		stNone = iota
		stAdded
		stDeleting
		stDeleted
	)
	pods := make([]*node.Pod, total)
	state := make([]int, total)
	deleted := map[int]bool{0: true, 1: true, 2: true, 3: true}
	var mu sync.Mutex
	var errs []string
	setState := func(i, st int) {
		mu.Lock()
		state[i] = st
		mu.Unlock()
	}
	var slowest time.Duration
	add := func(i int) error {
		ns, name, _ := strings.Cut(keys[i], "/")
		start := time.Now()
		p, err := n.AddPod(ns, name)
		if err != nil {
			return err
		}
		mu.Lock()
		pods[i], state[i] = p, stAdded
		slowest = max(slowest, time.Since(start))
		mu.Unlock()
		return p.Serve(lcPort)
	}
	if err := add(0); err != nil { // creates the bridge
		t.Fatal(err)
	}
	monitorStop := make(chan struct{})
	type monitorResult struct {
		checks     int
		violations []string
	}
	monitored := make(chan monitorResult)
	go func() {
		var r monitorResult
		defer func() { monitored <- r }()
		snapshot := func() ([]*node.Pod, []int) {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(pods), slices.Clone(state)
		}
		for i := 0; i < 3000; i++ {
			select {
			case <-monitorStop:
				return
			default:
			}
			ps, before := snapshot()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := n.IPSetList(ctx)
			cancel()
			if err != nil {
				r.violations = append(r.violations, err.Error())
				return
			}
			sets := lcParseIPSetList(out)
			_, after := snapshot()
			for j, p := range ps {
				var want []string
				switch {
				case before[j] == stAdded && after[j] == stAdded:
					want = []string{"NETPOL4-GI-"}
					if j%2 == 1 {
						want = []string{"NETPOL4-P-"}
					}
				case before[j] == stDeleted:
					want = []string{}
				default:
					continue
				}
				if names, _ := lcSetsHolding(sets, p.IP); !slices.Equal(lcPrefixes(names), want) && len(r.violations) < 10 {
					r.violations = append(r.violations, fmt.Sprintf("check %d: %s (%s, state %d) in sets %v, want %v",
						r.checks, p.Label(), p.IP, before[j], names, want))
				}
			}
			r.checks++
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for i := 0; i < total; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			if i > 0 {
				err = add(i)
			}
			if err == nil && deleted[i] {
				mu.Lock()
				p := pods[i]
				state[i] = stDeleting
				mu.Unlock()
				err = n.DelPod(p)
				setState(i, stDeleted)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v", keys[i], err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond) // a few more syncs with everything in place
	close(stop)
	rounds, syncs := <-churned, <-onces
	close(monitorStop)
	mon := <-monitored
	if len(errs) > 0 {
		t.Fatalf("concurrent ADDs and DELs: %s", strings.Join(errs, "\n"))
	}
	t.Logf("%d manifest changes, %d --once syncs and %d reads of the sets during the ADDs and DELs; slowest ADD %v",
		rounds, syncs, mon.checks, slowest)
	if len(mon.violations) > 0 {
		t.Errorf("during the race, pods were missing from or left in their sets:\n%s", strings.Join(mon.violations, "\n"))
	}
	if mon.checks < 10 {
		t.Errorf("the monitor read the sets only %d times", mon.checks)
	}

	// Let the agent finish its last sync: snapshot.json stable for 600 ms.
	snap := filepath.Join(n.DataDir, "snapshot.json")
	var last time.Time
	var stableSince time.Time
	if _, ok := lcWaitFor(10*time.Second, 50*time.Millisecond, func() bool {
		fi, err := os.Stat(snap)
		if err != nil {
			return false
		}
		if !fi.ModTime().Equal(last) {
			last, stableSince = fi.ModTime(), time.Now()
			return false
		}
		return time.Since(stableSince) > 600*time.Millisecond
	}); !ok {
		t.Fatalf("agent did not settle:\n%s", a.Output())
	}

	idx := lcReadIndex(t, n)
	sets := lcSets(t, n)
	var live []*node.Pod
	var wantRecords []string
	for i, p := range pods {
		if deleted[i] {
			lcWantSets(t, sets, "deleted "+p.Label(), p.IP)
			continue
		}
		live = append(live, p)
		wantRecords = append(wantRecords, lcRecordName(p))
		kind := "NETPOL4-GI-"
		if i%2 == 1 {
			kind = "NETPOL4-P-"
		}
		got := lcWantSets(t, sets, p.Label(), p.IP, kind)
		if want := idx.lcIndexSets(p.Label()); !slices.Equal(got, want) {
			t.Errorf("%s (%s) is in sets %v, the index says %v", p.Label(), p.IP, got, want)
		}
	}
	if got := sets["NETPOL4-DENY"]; len(got) != 0 {
		t.Errorf("NETPOL4-DENY = %v, want empty", got)
	}
	if got := lcRecords(t, n); !slices.Equal(got, lcSorted(wantRecords)) {
		t.Errorf("records = %v, want %v", got, lcSorted(wantRecords))
	}
	for _, p := range live {
		if err := n.CheckPod(p); err != nil {
			t.Errorf("final CHECK of %s: %v", p.Label(), err)
		}
	}
	// p04, p06 are db; p05, p11 web: db accepts web only.
	from := []*node.Pod{pods[4], pods[5]}
	to := []*node.Pod{pods[6], pods[11]}
	lcExpect(t, "after the race", from, to,
		"default/p05>default/p06", "default/p05>default/p11", "default/p04>default/p11")
	if err := a.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}
