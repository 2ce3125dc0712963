package integration

// CNI ADD and DEL racing with the agent's syncs: a long-running agent that
// syncs back to back, `--once` syncs in a loop, and pods added and deleted
// six at a time, while a monitor reads the sets all along.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// TestConcurrentAddAndSync: a pod whose ADD returned (and whose DEL has not
// begun) is in its set, and a pod whose DEL returned in none, whatever the
// syncs do meanwhile; afterwards the sets, the index, the pod records, CHECK
// and the traffic all agree.
func TestConcurrentAddAndSync(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	r := newRace(n, 12, 4) // p00-p03 are added then deleted
	writeManifest(t, dir, "10-pods.yaml", podsYAML(r.labels()))
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	writeManifest(t, dir, "05-churn.yaml", namespaceYAML("churn"))
	// The agent polls every 20 ms, and the manifests change every 25 ms:
	// it syncs back to back, so ADDs and DELs land in the middle of syncs.
	a := startAgentPolling(t, n, dir, "20ms")
	stopSyncs := syncAllAlong(t, n, dir)
	defer stopSyncs()

	if err := r.add(0); err != nil { // creates the bridge
		t.Fatal(err)
	}
	stopMonitor := r.monitor()
	errs := r.addAndDeleteAll(6)
	time.Sleep(300 * time.Millisecond) // a few more syncs with everything in place
	rounds, syncs := stopSyncs()
	mon := stopMonitor()
	if len(errs) > 0 {
		t.Fatalf("concurrent ADDs and DELs: %s", strings.Join(errs, "\n"))
	}
	t.Logf("%d manifest changes, %d --once syncs and %d reads of the sets during the ADDs and DELs; slowest ADD %v",
		rounds, syncs, mon.checks, r.slowest)
	if len(mon.violations) > 0 {
		t.Errorf("during the race, pods were missing from or left in their sets:\n%s", strings.Join(mon.violations, "\n"))
	}
	if mon.checks < 10 {
		t.Errorf("the monitor read the sets only %d times", mon.checks)
	}

	waitSettled(t, n, a)
	r.checkSettled(t)
	// p04, p06 are db; p05, p11 web: db accepts web only.
	from := []*node.Pod{r.pods[4], r.pods[5]}
	to := []*node.Pod{r.pods[6], r.pods[11]}
	expectMatrix(t, "after the race", from, to,
		"default/p05>default/p06", "default/p05>default/p11", "default/p04>default/p11")
	if err := a.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// startAgentPolling starts a long-running agent that polls dir every poll,
// and waits (bounded) for its first sync.
func startAgentPolling(t *testing.T, n *node.Node, dir, poll string) *node.Agent {
	t.Helper()
	a, err := n.StartAgent("--manifests", dir, "--node-name", n.Name, "--poll", poll)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := waitFor(10*time.Second, 20*time.Millisecond, func() bool {
		return strings.Contains(a.Output(), "msg=synced")
	}); !ok {
		t.Fatalf("agent did not sync within 10s:\n%s", a.Output())
	}
	return a
}

// syncAllAlong keeps the node syncing until the returned stop is called:
// a manifest change every 25 ms (at most 1000) for the long-running agent,
// and `--once` syncs in a loop (at most 100) racing with it. stop returns
// how many of each ran; calling it again returns zeros.
func syncAllAlong(t *testing.T, n *node.Node, dir string) (stop func() (rounds, syncs int)) {
	done := make(chan struct{})
	churned, onces := make(chan int, 1), make(chan int, 1)
	go func() {
		i := 0
		defer func() { churned <- i }()
		for ; i < 1000; i++ {
			select {
			case <-done:
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
	go func() {
		i := 0
		defer func() { onces <- i }()
		for ; i < 100; i++ {
			select {
			case <-done:
				return
			default:
			}
			if out, err := n.RunAgent("--once", "--manifests", dir, "--node-name", n.Name); err != nil {
				t.Errorf("agent --once during the race: %v\n%s", err, out)
				return
			}
		}
	}()
	var once sync.Once
	return func() (rounds, syncs int) {
		once.Do(func() {
			close(done)
			rounds, syncs = <-churned, <-onces
		})
		return rounds, syncs
	}
}

// The life of a pod in the race.
const (
	stNone = iota
	stAdded
	stDeleting
	stDeleted
)

// race is the pods of TestConcurrentAddAndSync: default/p00.. with app=db
// (even) or app=web (odd); the first `deleted` are deleted again after
// their ADD. Its fields are shared with the monitor, under mu.
type race struct {
	n       *node.Node
	keys    []string
	deleted int

	mu      sync.Mutex
	pods    []*node.Pod
	state   []int
	slowest time.Duration // the slowest ADD
}

func newRace(n *node.Node, total, deleted int) *race {
	r := &race{n: n, deleted: deleted, pods: make([]*node.Pod, total), state: make([]int, total)}
	for i := 0; i < total; i++ {
		r.keys = append(r.keys, fmt.Sprintf("default/p%02d", i))
	}
	return r
}

// labels maps each pod to its labels, for podsYAML.
func (r *race) labels() map[string]string {
	out := map[string]string{}
	for i, k := range r.keys {
		out[k] = "app=db"
		if i%2 == 1 {
			out[k] = "app=web"
		}
	}
	return out
}

// wantKind is the kind of set pod i belongs in: its ingress group (db) or
// the policy's peer set (web).
func wantKind(i int) string {
	if i%2 == 1 {
		return "NETPOL4-P-"
	}
	return "NETPOL4-GI-"
}

func (r *race) setState(i, st int) {
	r.mu.Lock()
	r.state[i] = st
	r.mu.Unlock()
}

// add runs CNI ADD for pod i and starts its server.
func (r *race) add(i int) error {
	ns, name, _ := strings.Cut(r.keys[i], "/")
	start := time.Now()
	p, err := r.n.AddPod(ns, name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.pods[i], r.state[i] = p, stAdded
	r.slowest = max(r.slowest, time.Since(start))
	r.mu.Unlock()
	return p.Serve(servePort)
}

// addAndDeleteAll adds every pod but p00 (already added), at most limit
// CNI calls at a time, and deletes the first r.deleted after their ADD. It
// returns the errors.
func (r *race) addAndDeleteAll(limit int) []string {
	var wg sync.WaitGroup
	var errsMu sync.Mutex
	var errs []string
	sem := make(chan struct{}, limit)
	for i := range r.keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			if i > 0 {
				err = r.add(i)
			}
			if err == nil && i < r.deleted {
				r.mu.Lock()
				p := r.pods[i]
				r.state[i] = stDeleting
				r.mu.Unlock()
				err = r.n.DelPod(p)
				r.setState(i, stDeleted)
			}
			if err != nil {
				errsMu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v", r.keys[i], err))
				errsMu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// monitorResult is what the monitor saw.
type monitorResult struct {
	checks     int
	violations []string
}

// monitor reads `ipset list` every 5 ms (at most 3000 times) until the
// returned stop is called, and records every pod found outside the sets its
// state calls for.
func (r *race) monitor() (stop func() monitorResult) {
	done := make(chan struct{})
	result := make(chan monitorResult)
	go func() {
		var res monitorResult
		defer func() { result <- res }()
		for i := 0; i < 3000; i++ {
			select {
			case <-done:
				return
			default:
			}
			if err := r.checkSets(&res); err != nil {
				res.violations = append(res.violations, err.Error())
				return
			}
			res.checks++
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() monitorResult {
		close(done)
		return <-result
	}
}

func (r *race) snapshot() ([]*node.Pod, []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pods), slices.Clone(r.state)
}

// checkSets reads the sets once and compares them with the pods whose state
// did not change during the read: an added pod in the set of its kind, a
// deleted one in none.
func (r *race) checkSets(res *monitorResult) error {
	ps, before := r.snapshot()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	out, err := r.n.IPSetList(ctx)
	cancel()
	if err != nil {
		return err
	}
	sets := parseIPSetList(out)
	_, after := r.snapshot()
	for j, p := range ps {
		var want []string
		switch {
		case before[j] == stAdded && after[j] == stAdded:
			want = withDispatch([]string{wantKind(j)})
		case before[j] == stDeleted:
			want = []string{}
		default:
			continue
		}
		if names, _ := setsHolding(sets, p.IP); !slices.Equal(setKinds(names), want) && len(res.violations) < 10 {
			res.violations = append(res.violations, fmt.Sprintf("check %d: %s (%s, state %d) in sets %v, want %v",
				res.checks, p.Label(), p.IP, before[j], names, want))
		}
	}
	return nil
}

// waitSettled waits (bounded) until the agent's last sync is done:
// snapshot.json unchanged for 600 ms.
func waitSettled(t *testing.T, n *node.Node, a *node.Agent) {
	t.Helper()
	snap := filepath.Join(n.DataDir, "snapshot.json")
	var last, stableSince time.Time
	if _, ok := waitFor(10*time.Second, 50*time.Millisecond, func() bool {
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
}

// checkSettled checks the node after the race: each live pod in the sets
// of its kind, as the index says, and passing CHECK; each deleted pod in no
// set and without a record; the DENY set empty.
func (r *race) checkSettled(t *testing.T) {
	t.Helper()
	idx := readIndex(t, r.n)
	sets := nodeSets(t, r.n)
	var live []*node.Pod
	var wantRecords []string
	for i, p := range r.pods {
		if i < r.deleted {
			wantSets(t, sets, "deleted "+p.Label(), p.IP)
			continue
		}
		live = append(live, p)
		wantRecords = append(wantRecords, recordFileName(p))
		got := wantSets(t, sets, p.Label(), p.IP, wantKind(i))
		if want := idx.setsOf(p.Label()); !slices.Equal(got, want) {
			t.Errorf("%s (%s) is in sets %v, the index says %v", p.Label(), p.IP, got, want)
		}
	}
	if got := sets["NETPOL4-DENY"]; len(got) != 0 {
		t.Errorf("NETPOL4-DENY = %v, want empty", got)
	}
	if got := podRecords(t, r.n); !slices.Equal(got, sortedCopy(wantRecords)) {
		t.Errorf("records = %v, want %v", got, sortedCopy(wantRecords))
	}
	for _, p := range live {
		if err := r.n.CheckPod(p); err != nil {
			t.Errorf("final CHECK of %s: %v", p.Label(), err)
		}
	}
}
