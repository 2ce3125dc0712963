package integration

// SIGKILL of the plugin mid-ADD and mid-DEL, as a runtime's timeout would
// kill it, followed by the runtime's retry.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/state"
)

// killPlugin runs the netpol plugin's command for a, and SIGKILLs it: while
// the test holds the data dir lock (delay < 0: the plugin waits for it), or
// delay after its start. It reports whether the plugin was killed (rather
// than done before).
func killPlugin(t *testing.T, n *node.Node, command string, a node.PodArgs, prev types.Result, delay time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, err := n.PluginCommand(ctx, command, "netpol", a, prev)
	if err != nil {
		t.Fatal(err)
	}
	if delay < 0 {
		unlock, err := state.New(n.DataDir).Lock(ctx, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		delay = 50 * time.Millisecond
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err = cmd.Wait()
	return err != nil && strings.Contains(err.Error(), "killed")
}

func TestPluginKilledMidAddDel(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "app=other", "default/victim": "app=db",
	}))
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	web, db, other := pods[0], pods[1], pods[2]
	syncOnce(t, n, dir)
	p := startKillProbe(other, db.IP)
	defer func() {
		select {
		case <-p.stop:
		default:
			p.finish()
		}
	}()

	// How long one ADD and one DEL of netpol take here, to spread the kills.
	var took [2]time.Duration
	killVictim(t, n, func(a node.PodArgs, prev types.Result) {
		for i, command := range []string{"ADD", "DEL"} {
			start := time.Now()
			if _, err := n.InvokePlugin(context.Background(), command, "netpol", a, prev); err != nil {
				t.Fatalf("%s: %v", command, err)
			}
			took[i] = time.Since(start)
		}
	})
	t.Logf("netpol ADD %v, DEL %v", took[0], took[1])

	const steps = 8
	points, killed := 0, 0
	left := map[string]int{} // what the kills left, before the retry
	for i, command := range []string{"ADD", "DEL"} {
		for k := -1; k <= steps; k++ {
			delay := took[i] * time.Duration(k) / steps
			if k < 0 {
				delay = -1
			}
			p.at.Store(fmt.Sprintf("%s killed at %v", command, delay))
			killVictim(t, n, func(a node.PodArgs, prev types.Result) {
				ctx := timeoutCtx(t, 30*time.Second)
				if command == "DEL" {
					if _, err := n.InvokePlugin(ctx, "ADD", "netpol", a, prev); err != nil {
						t.Fatalf("ADD: %v", err)
					}
				}
				points++
				if killPlugin(t, n, command, a, prev, delay) {
					killed++
				}
				left[command+": "+killLeft(t, n, a, killIP(t, prev))]++
				// The runtime retries.
				if _, err := n.InvokePlugin(ctx, command, "netpol", a, prev); err != nil {
					t.Fatalf("%s retried after a kill at %v: %v", command, delay, err)
				}
				ip := killIP(t, prev)
				if command == "ADD" {
					killVictimIsolated(t, n, a, prev, web, other, ip, delay)
					if _, err := n.InvokePlugin(ctx, "DEL", "netpol", a, prev); err != nil {
						t.Fatalf("DEL: %v", err)
					}
				} else if names, _ := setsHolding(nodeSets(t, n), ip); len(names) > 0 {
					t.Errorf("DEL retried after a kill at %v: %s still in %v", delay, ip, names)
				}
			})
		}
	}
	p.finish()
	t.Logf("what the kills left before the retry: %v", left)
	t.Logf("%d plugin kill points (%d killed mid-run), %d probes sent, %d got through", points, killed, p.sent.Load(), p.passed.Load())
	if p.passed.Load() > 0 {
		t.Errorf("other reached db %d times, at: %v", p.passed.Load(), p.breaches)
	}
	if killed == 0 {
		t.Error("no plugin was killed while it ran")
	}
	// Nothing leaks: the records of the live pods only (the next sync
	// removes a killed write's temp file), no process in the node.
	syncOnce(t, n, dir)
	if recs := podRecords(t, n); len(recs) != len(pods) {
		t.Errorf("pod records after the kills: %v, want %d", recs, len(pods))
	}
	for _, d := range []string{n.DataDir, filepath.Join(n.DataDir, "pods")} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("temp file %s left in %s", e.Name(), d)
			}
		}
	}
	if procs := killProcsIn(t, n); len(procs) > 0 {
		t.Errorf("processes left in the node's network namespace: %v", procs)
	}
	expectMatrix(t, "after the plugin kills", pods, []*node.Pod{db}, "default/web>default/db")
}

// killVictim gives f the arguments and bridge result of a new attachment of
// default/victim, and removes the bridge's part afterwards.
func killVictim(t *testing.T, n *node.Node, f func(node.PodArgs, types.Result)) {
	t.Helper()
	_, path, err := n.NewPodNetNS()
	if err != nil {
		t.Fatal(err)
	}
	cid, err := node.NewContainerID()
	if err != nil {
		t.Fatal(err)
	}
	a := node.PodArgs{Namespace: "default", Name: "victim", ContainerID: cid, NetNSPath: path, IfName: "eth0"}
	ctx := timeoutCtx(t, 30*time.Second)
	prev, err := n.InvokePlugin(ctx, "ADD", "bridge", a, nil)
	if err != nil {
		t.Fatal(err)
	}
	f(a, prev)
	if _, err := n.InvokePlugin(ctx, "DEL", "bridge", a, prev); err != nil {
		t.Fatal(err)
	}
}

// killIP is the IPv4 address of a bridge result.
func killIP(t *testing.T, prev types.Result) string {
	t.Helper()
	r, err := types100.NewResultFromResult(prev)
	if err != nil {
		t.Fatal(err)
	}
	for _, ipc := range r.IPs {
		if ipc.Address.IP.To4() != nil {
			return ipc.Address.IP.String()
		}
	}
	t.Fatalf("no IPv4 address in %v", prev)
	return ""
}

// killVictimIsolated checks the victim after a retried ADD: CHECK passes,
// and once it serves (the runtime starts its containers now), web reaches
// it and other does not.
func killVictimIsolated(t *testing.T, n *node.Node, a node.PodArgs, prev types.Result, web, other *node.Pod, ip string, delay time.Duration) {
	t.Helper()
	if _, err := n.InvokePlugin(timeoutCtx(t, 30*time.Second), "CHECK", "netpol", a, prev); err != nil {
		t.Errorf("CHECK after ADD retried after a kill at %v: %v", delay, err)
	}
	srv, err := node.Serve(a.NetNSPath, "", servePort)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if node.ProbeOnce(other, ip, "tcp", servePort, 100*time.Millisecond) == nil {
		t.Errorf("ADD retried after a kill at %v: default/other reaches the isolated victim %s", delay, ip)
	}
	if !node.Probe(web, ip, "tcp", servePort, denyTimeout) {
		t.Errorf("ADD retried after a kill at %v: default/web cannot reach the victim %s", delay, ip)
	}
}

// killLeft says what a killed ADD or DEL left of an attachment: its record
// and whether its address is in any of our sets.
func killLeft(t *testing.T, n *node.Node, a node.PodArgs, ip string) string {
	t.Helper()
	_, err := state.New(n.DataDir).ReadAttachment(a.ContainerID, a.IfName)
	rec := "record"
	if os.IsNotExist(err) {
		rec = "no record"
	} else if err != nil {
		t.Fatal(err)
	}
	if names, _ := setsHolding(nodeSets(t, n), ip); len(names) > 0 {
		return rec + ", in sets"
	}
	return rec + ", in no set"
}
