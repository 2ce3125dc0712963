package integration

// CNI lifecycle of the netpol plugin on a real node: ADD twice, CHECK, DEL
// (twice, without prevResult, without record, with a shared address), GC,
// STATUS, fail-closed ADD before the agent knows a pod, and uninstall.
// Every test asserts on what the node's kernel holds (iptables-save, ipset
// list) and on real traffic between pod namespaces.

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netpol/netpol/integration/node"
)

// singleNodeWorld is a node whose agent has synced manifests of pods (key -> labels)
// and, with policy, the db-from-web policy of namespace default. The pods
// are not added yet.
func singleNodeWorld(t *testing.T, opts node.Options, pods map[string]string, policy bool) (*node.Node, string) {
	t.Helper()
	n := newNode(t, opts)
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(pods))
	if policy {
		writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	}
	syncOnce(t, n, dir)
	return n, dir
}

// resultJSON is a result as JSON in CNI 1.0.0 form, for comparisons.
func resultJSON(t *testing.T, r types.Result) string {
	t.Helper()
	r100, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatalf("convert result: %v", err)
	}
	b, err := json.Marshal(r100)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAddTwice(t *testing.T) {
	n, _ := singleNodeWorld(t, node.Options{}, map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "",
	}, true)
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	web, db, other := pods[0], pods[1], pods[2]
	setsBefore := nodeSets(t, n)
	ctx := timeoutCtx(t, time.Minute)

	want := resultJSON(t, db.Result)
	for i := 1; i <= 2; i++ {
		res, err := n.InvokePlugin(ctx, "ADD", "netpol", db.Args(), db.Result)
		if err != nil {
			t.Fatalf("netpol ADD #%d of %s: %v", i, db.Label(), err)
		}
		if got := resultJSON(t, res); got != want {
			t.Errorf("netpol ADD #%d returned\n%s\nwant prevResult unchanged:\n%s", i, got, want)
		}
	}

	wantRecords := sortedCopy([]string{recordFileName(web), recordFileName(db), recordFileName(other)})
	if got := podRecords(t, n); !slices.Equal(got, wantRecords) {
		t.Errorf("records after ADD twice = %v, want %v", got, wantRecords)
	}
	sets := nodeSets(t, n)
	dbSets := wantSets(t, sets, "db", db.IP, "NETPOL4-GI-")
	wantSets(t, sets, "web", web.IP, "NETPOL4-P-")
	wantSets(t, sets, "other", other.IP)
	for _, s := range dbSets {
		if got := sets[s]; !slices.Equal(got, []string{db.IP}) {
			t.Errorf("set %s = %v, want exactly [%s]", s, got, db.IP)
		}
	}
	if idx := readIndex(t, n); !slices.Equal(idx.setsOf("default/db"), dbSets) {
		t.Errorf("db is in sets %v, index says %v", dbSets, idx.setsOf("default/db"))
	}
	if len(sets["NETPOL4-DENY"]) != 0 {
		t.Errorf("NETPOL4-DENY = %v, want empty", sets["NETPOL4-DENY"])
	}
	for name, members := range setsBefore {
		if !slices.Equal(sets[name], members) {
			t.Errorf("set %s changed by a repeated ADD: %v -> %v", name, members, sets[name])
		}
	}
	expectMatrix(t, "after ADD twice", pods, pods,
		"default/web>default/db", "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web")
	if err := n.CheckPod(db); err != nil {
		t.Errorf("CHECK after ADD twice: %v", err)
	}
}

func TestCheck(t *testing.T) {
	n, dir := singleNodeWorld(t, node.Options{}, map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "",
	}, true)
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	web, db, other := pods[0], pods[1], pods[2]
	syncOnce(t, n, dir) // the agent has now seen the recorded IPs too
	for _, p := range pods {
		if err := n.CheckPod(p); err != nil {
			t.Fatalf("CHECK %s after ADD and sync: %v", p.Label(), err)
		}
	}
	toDB := []*node.Pod{db}
	expectMatrix(t, "synced", []*node.Pod{web, other}, toDB, "default/web>default/db")

	save := iptablesSave(t, n)
	ingress := chainRules(save, "NETPOL-INGRESS")
	if len(ingress) != 2 || !strings.Contains(ingress[0], "NETPOL4-DENY dst") ||
		!strings.Contains(ingress[1], "NETPOL4-ISO-I dst") || !strings.Contains(ingress[1], "-g NETPOL-TI-") {
		t.Fatalf("NETPOL-INGRESS is not [DENY drop, isolated -> tree]:\n%s", strings.Join(ingress, "\n"))
	}
	root := ingress[1][strings.Index(ingress[1], "-g ")+3:]
	leaf := chainRules(save, root) // one group: the root is a leaf
	if len(leaf) != 2 || !strings.Contains(leaf[0], "-g NETPOL-GI-") || !strings.Contains(leaf[1], "-g NETPOL-SCAN-I") {
		t.Fatalf("tree root %s is not [db's group, scan]:\n%s", root, strings.Join(leaf, "\n"))
	}
	groupChain := leaf[0][strings.Index(leaf[0], "-g ")+3:]
	if got := chainRules(save, groupChain); len(got) != 5 || !strings.Contains(got[1], "-j NETPOL-I-") || !strings.Contains(got[3], "-j NFLOG") {
		t.Fatalf("group chain %s is not [set pending, policy, return if allowed, log, drop]:\n%s", groupChain, strings.Join(got, "\n"))
	}
	dbSet := wantSets(t, nodeSets(t, n), "db", db.IP, "NETPOL4-GI-")

	cases := []struct {
		name    string
		cmd     []string // run in the node namespace to break something
		want    []string // the CHECK error must contain all of these
		allowed []string // traffic to db while it is broken
	}{
		{"dispatch rule", []string{"iptables", "-w", "-D", "NETPOL-INGRESS", "2"},
			[]string{"NETPOL-INGRESS", "missing rule", root},
			[]string{"default/web>default/db", "default/other>default/db"}},
		// Without the tree's rule the leaf misses and the scan chain
		// still finds db's group: policy holds.
		{"tree leaf rule", []string{"iptables", "-w", "-D", root, "1"},
			[]string{root, "missing rule", groupChain},
			[]string{"default/web>default/db"}},
		{"group chain rule", []string{"iptables", "-w", "-D", groupChain, "2"},
			[]string{groupChain, "missing rule", "NETPOL-I-"},
			nil},
		{"FORWARD hook", []string{"iptables", "-w", "-D", "FORWARD", "1"},
			[]string{"hook missing from FORWARD", "NETPOL-FORWARD"},
			[]string{"default/web>default/db", "default/other>default/db"}},
		// db stays in the isolated set, in no group set: the scan finds
		// no group and drops (fail closed), where it used to fall off the
		// scan chain open to everyone.
		{"set entry", []string{"ipset", "del", dbSet[0], db.IP},
			[]string{"set " + dbSet[0], db.IP},
			nil},
	}
	for _, c := range cases {
		execIn(t, n, c.cmd[0], c.cmd[1:]...)
		err := n.CheckPod(db)
		if err == nil {
			t.Errorf("%s removed: CHECK of %s succeeded", c.name, db.Label())
		} else {
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s removed: CHECK error does not name %q: %v", c.name, w, err)
				}
			}
			t.Logf("%s removed: CHECK says: %v", c.name, err)
		}
		expectMatrix(t, c.name+" removed", []*node.Pod{web, other}, toDB, c.allowed...)
		syncOnce(t, n, dir) // the agent puts it back
		if err := n.CheckPod(db); err != nil {
			t.Errorf("%s removed, then agent synced: CHECK: %v", c.name, err)
		}
	}
	// The CHECK of web (not selected, only a peer) sees its peer entry go.
	webSet := wantSets(t, nodeSets(t, n), "web", web.IP, "NETPOL4-P-")
	execIn(t, n, "ipset", "del", webSet[0], web.IP)
	if err := n.CheckPod(web); err == nil || !strings.Contains(err.Error(), webSet[0]) {
		t.Errorf("web's peer entry removed: CHECK = %v, want an error naming %s", err, webSet[0])
	}
	syncOnce(t, n, dir)
	if err := n.CheckPod(web); err != nil {
		t.Errorf("CHECK of web after sync: %v", err)
	}
	expectMatrix(t, "repaired", []*node.Pod{web, other}, toDB, "default/web>default/db")
}

// craftedResult is a CNI result giving ip/24 to eth0 of netns path.
func craftedResult(ip, path string) *types100.Result {
	zero := 0
	return &types100.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*types100.Interface{{Name: "eth0", Mac: "02:00:00:00:00:01", Sandbox: path}},
		IPs: []*types100.IPConfig{{
			Interface: &zero,
			Address:   net.IPNet{IP: net.ParseIP(ip).To4(), Mask: net.CIDRMask(24, 32)},
		}},
	}
}

func TestDelTwiceAndWithoutPrevResult(t *testing.T) {
	n, dir := singleNodeWorld(t, node.Options{}, map[string]string{
		"default/a": "app=db", "default/b": "app=db", "default/c": "app=web", "default/keep": "app=db",
		"default/dup1": "app=db", "default/dup2": "app=db",
	}, true)
	pods := addServingPods(t, n, "default/a", "default/b", "default/c", "default/keep")
	a, b, c, keep := pods[0], pods[1], pods[2], pods[3]
	syncOnce(t, n, dir)
	ctx := timeoutCtx(t, time.Minute)
	sets := nodeSets(t, n)
	group := wantSets(t, sets, "a", a.IP, "NETPOL4-GI-")
	wantSets(t, sets, "b", b.IP, "NETPOL4-GI-")
	wantSets(t, sets, "keep", keep.IP, "NETPOL4-GI-")
	wantSets(t, sets, "c", c.IP, "NETPOL4-P-")
	expectMatrix(t, "before DEL", []*node.Pod{c}, []*node.Pod{keep}, "default/c>default/keep")

	// DEL twice, with the cached prevResult.
	for i := 1; i <= 2; i++ {
		if err := n.DelPodArgs(ctx, a.Args(), node.UseCache); err != nil {
			t.Errorf("DEL #%d of a: %v", i, err)
		}
	}
	// DEL with no prevResult: the record names the entries.
	if err := n.DelPodArgs(ctx, b.Args(), node.NoCache); err != nil {
		t.Errorf("DEL of b without prevResult: %v", err)
	}
	// DEL with prevResult after the record was lost.
	if err := os.Remove(filepath.Join(n.DataDir, "pods", recordFileName(c))); err != nil {
		t.Fatal(err)
	}
	if _, err := n.InvokePlugin(ctx, "DEL", "netpol", c.Args(), c.Result); err != nil {
		t.Errorf("netpol DEL of c without record: %v", err)
	}
	sets = nodeSets(t, n)
	wantSets(t, sets, "a (deleted twice)", a.IP)
	wantSets(t, sets, "b (deleted without prevResult)", b.IP)
	wantSets(t, sets, "c (deleted without record)", c.IP)
	wantSets(t, sets, "keep", keep.IP, "NETPOL4-GI-")
	if got := sets[group[0]]; !slices.Equal(got, []string{keep.IP}) {
		t.Errorf("group set %s = %v, want [%s]", group[0], got, keep.IP)
	}
	if got := podRecords(t, n); !slices.Equal(got, []string{recordFileName(keep)}) {
		t.Errorf("records = %v, want only keep's", got)
	}
	if err := n.CheckPod(keep); err != nil {
		t.Errorf("CHECK of keep: %v", err)
	}

	// Two containers with the same address (a reused IP, a runtime that
	// lost track): DEL of one keeps the other's entries.
	const shared = "10.244.1.200"
	var dups []node.PodArgs
	for _, name := range []string{"dup1", "dup2"} {
		_, path, err := n.NewPodNetNS()
		if err != nil {
			t.Fatal(err)
		}
		cid, err := node.NewContainerID()
		if err != nil {
			t.Fatal(err)
		}
		args := node.PodArgs{Namespace: "default", Name: name, ContainerID: cid, NetNSPath: path}
		if _, err := n.InvokePlugin(ctx, "ADD", "netpol", args, craftedResult(shared, path)); err != nil {
			t.Fatalf("netpol ADD of %s: %v", name, err)
		}
		dups = append(dups, args)
	}
	wantSets(t, nodeSets(t, n), "dup1+dup2", shared, "NETPOL4-GI-")
	if _, err := n.InvokePlugin(ctx, "DEL", "netpol", dups[0], craftedResult(shared, dups[0].NetNSPath)); err != nil {
		t.Fatalf("netpol DEL of dup1: %v", err)
	}
	sets = nodeSets(t, n)
	if got := wantSets(t, sets, "dup2 after DEL of dup1", shared, "NETPOL4-GI-"); !slices.Equal(got, group) {
		t.Errorf("dup2 is in %v, want %v", got, group)
	}
	wantRecords := sortedCopy([]string{recordFileName(keep), dups[1].ContainerID + "@eth0.json"})
	if got := podRecords(t, n); !slices.Equal(got, wantRecords) {
		t.Errorf("records = %v, want %v", got, wantRecords)
	}
	if _, err := n.InvokePlugin(ctx, "DEL", "netpol", dups[1], nil); err != nil {
		t.Fatalf("netpol DEL of dup2 without prevResult: %v", err)
	}
	sets = nodeSets(t, n)
	wantSets(t, sets, "shared address after DEL of both", shared)
	wantSets(t, sets, "keep", keep.IP, "NETPOL4-GI-")
}

func TestGC(t *testing.T) {
	n, _ := singleNodeWorld(t, node.Options{CNIVersion: "1.1.0"}, map[string]string{
		"default/a": "app=db", "default/b": "app=web", "default/c": "app=db",
	}, true)
	pods := addServingPods(t, n, "default/a", "default/b", "default/c")
	a, b, c := pods[0], pods[1], pods[2]
	sets := nodeSets(t, n)
	groupA := wantSets(t, sets, "a", a.IP, "NETPOL4-GI-")
	peerB := wantSets(t, sets, "b", b.IP, "NETPOL4-P-")
	wantSets(t, sets, "c", c.IP, "NETPOL4-GI-")

	// Forget c in libcni's cache, so that libcni does not DEL it itself
	// before GC: only netpol's GC verb can collect it.
	cached, err := filepath.Glob(filepath.Join(n.CacheDir, "results", "*"+c.ContainerID+"*"))
	if err != nil || len(cached) == 0 {
		t.Fatalf("libcni cache of c not found (%v): %v", err, cached)
	}
	for _, f := range cached {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.GC([]types.GCAttachment{a.Attachment(), b.Attachment()}); err != nil {
		t.Fatalf("GC: %v", err)
	}

	wantRecords := sortedCopy([]string{recordFileName(a), recordFileName(b)})
	if got := podRecords(t, n); !slices.Equal(got, wantRecords) {
		t.Errorf("records after GC = %v, want %v", got, wantRecords)
	}
	log := string(readFileIfAny(t, filepath.Join(n.DataDir, "netpol.log")))
	if !strings.Contains(log, "stale attachment collected") || !strings.Contains(log, c.ContainerID) {
		t.Errorf("netpol.log does not say GC collected %s:\n%s", c.ContainerID, log)
	}
	sets = nodeSets(t, n)
	wantSets(t, sets, "c (collected)", c.IP)
	if got := wantSets(t, sets, "a", a.IP, "NETPOL4-GI-"); !slices.Equal(got, groupA) {
		t.Errorf("a moved from %v to %v", groupA, got)
	}
	if got := wantSets(t, sets, "b", b.IP, "NETPOL4-P-"); !slices.Equal(got, peerB) {
		t.Errorf("b moved from %v to %v", peerB, got)
	}
	if got := sets[groupA[0]]; !slices.Equal(got, []string{a.IP}) {
		t.Errorf("group set %s = %v, want [%s]", groupA[0], got, a.IP)
	}
	for _, p := range []*node.Pod{a, b} {
		if err := n.CheckPod(p); err != nil {
			t.Errorf("CHECK of %s after GC: %v", p.Label(), err)
		}
	}
	expectMatrix(t, "after GC", []*node.Pod{a, b}, []*node.Pod{a, b}, "default/b>default/a", "default/a>default/b")
}

func TestStatus(t *testing.T) {
	n := newNode(t, node.Options{CNIVersion: "1.1.0"})
	if err := n.Status(); err != nil {
		t.Fatalf("STATUS of a fresh node: %v", err)
	}
	execIn(t, n, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0")
	err := n.Status()
	var cniErr *types.Error
	switch {
	case err == nil:
		t.Error("STATUS with bridge-nf-call-iptables=0 succeeded")
	case !errors.As(err, &cniErr):
		t.Errorf("STATUS error is not a CNI error: %T %v", err, err)
	case cniErr.Code != 50:
		t.Errorf("STATUS error code = %d, want 50: %v", cniErr.Code, err)
	case !strings.Contains(err.Error(), "net.bridge.bridge-nf-call-iptables"):
		t.Errorf("STATUS error does not name the sysctl: %v", err)
	default:
		t.Logf("STATUS says: %v", err)
	}
	execIn(t, n, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
	if err := n.Status(); err != nil {
		t.Errorf("STATUS after the sysctl is back: %v", err)
	}

	// An unusable data dir (a file where the directory should be).
	moved := n.DataDir + ".moved"
	if err := os.Rename(n.DataDir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.DataDir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = n.Status()
	if !errors.As(err, &cniErr) || cniErr.Code != 50 || !strings.Contains(err.Error(), "data dir") {
		t.Errorf("STATUS with a file as data dir = %v, want code 50 naming the data dir", err)
	}
	if err := errors.Join(os.Remove(n.DataDir), os.Rename(moved, n.DataDir)); err != nil {
		t.Fatal(err)
	}
	if err := n.Status(); err != nil {
		t.Errorf("STATUS after the data dir is back: %v", err)
	}
}

func TestFailClosedBeforeAgent(t *testing.T) {
	n := newNode(t, node.Options{})
	pods := addServingPods(t, n, "default/a", "default/b")
	a, b := pods[0], pods[1]

	save := iptablesSave(t, n)
	for _, want := range []string{
		"-A FORWARD -m comment --comment \"netpol: NetworkPolicy enforcement\" -j NETPOL-FORWARD",
		"-A NETPOL-INGRESS -m set --match-set NETPOL4-DENY dst",
		"-A NETPOL-EGRESS -m set --match-set NETPOL4-DENY src",
	} {
		if !strings.Contains(save, want) {
			t.Errorf("iptables-save before any agent lacks %q", want)
		}
	}
	if got := chainRules(save, "NETPOL-INGRESS"); len(got) != 1 || !strings.HasSuffix(got[0], "-g NETPOL-DENY-I") {
		t.Errorf("NETPOL-INGRESS = %v, want the one DENY rule, to NETPOL-DENY-I", got)
	}
	if got := chainRules(save, "NETPOL-DENY-I"); len(got) != 2 || !strings.Contains(got[0], "-j NFLOG --nflog-prefix netpol-I-drop-unknown") ||
		!strings.HasSuffix(got[1], "-j DROP") {
		t.Errorf("NETPOL-DENY-I = %v, want [log, drop]", got)
	}
	sets := nodeSets(t, n)
	if got, want := sets["NETPOL4-DENY"], sortedCopy([]string{a.IP, b.IP}); !slices.Equal(got, want) {
		t.Errorf("NETPOL4-DENY = %v, want %v", got, want)
	}
	expectMatrix(t, "no agent yet", pods, pods)
	for _, p := range pods {
		if err := n.CheckPod(p); err != nil {
			t.Errorf("CHECK of %s, denied before any agent: %v", p.Label(), err)
		}
	}
	// Node traffic (kubelet probes) is never denied.
	if !node.Probe(n, a.IP, "tcp", servePort, denyTimeout) {
		t.Errorf("the node cannot reach %s while it is denied", a.Label())
	}
	log := string(readFileIfAny(t, filepath.Join(n.DataDir, "netpol.log")))
	if c := strings.Count(log, "no snapshot yet: denied until the agent syncs"); c != 2 {
		t.Errorf("netpol.log says %d times why a pod is denied, want 2:\n%s", c, log)
	}

	// The agent learns both pods; no policies: everything allowed.
	dir := t.TempDir()
	known := map[string]string{"default/a": "app=web", "default/b": "app=db"}
	writeManifest(t, dir, "10-pods.yaml", podsYAML(known))
	syncOnce(t, n, dir)
	if got := nodeSets(t, n)["NETPOL4-DENY"]; len(got) != 0 {
		t.Errorf("NETPOL4-DENY after sync = %v, want empty", got)
	}
	expectMatrix(t, "agent knows the pods", pods, pods, allPairs(a.Label(), b.Label())...)

	// A policy in default: an unknown pod there is denied, an unknown pod
	// of a namespace without policies is not.
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	syncOnce(t, n, dir)
	late := addServingPods(t, n, "default/late", "open/free")
	lateDefault, free := late[0], late[1]
	all := append(slices.Clone(pods), late...)
	expectMatrix(t, "unknown pods after a policy", all, all,
		"default/a>default/b", "default/b>default/a",
		"default/a>open/free", "default/b>open/free",
		"open/free>default/a")
	if got := nodeSets(t, n)["NETPOL4-DENY"]; !slices.Equal(got, []string{lateDefault.IP}) {
		t.Errorf("NETPOL4-DENY = %v, want only %s (%s)", got, lateDefault.IP, lateDefault.Label())
	}
	wantSets(t, nodeSets(t, n), "open/free", free.IP)
	for _, p := range late {
		if err := n.CheckPod(p); err != nil {
			t.Errorf("CHECK of %s, not known to the agent: %v", p.Label(), err)
		}
	}
	log = string(readFileIfAny(t, filepath.Join(n.DataDir, "netpol.log")))
	if !strings.Contains(log, "pod not in the snapshot and its namespace has policies") {
		t.Errorf("netpol.log does not say why default/late is denied:\n%s", log)
	}

	// Once the manifests know it, the late pod follows the policy.
	known["default/late"] = "app=web"
	known["open/free"] = ""
	writeManifest(t, dir, "10-pods.yaml", podsYAML(known))
	syncOnce(t, n, dir)
	expectMatrix(t, "late pods known", all, all,
		"default/a>default/b", "default/a>default/late", "default/a>open/free",
		"default/b>default/a", "default/b>default/late", "default/b>open/free",
		"default/late>default/a", "default/late>default/b", "default/late>open/free",
		"open/free>default/a", "open/free>default/late")
}

func TestUninstallLeavesNoTrace(t *testing.T) {
	n := newNode(t, node.Options{Subnet6: "fd00:10:244:1::/64"}) // dual-stack
	// Foreign state that netpol must never touch.
	execIn(t, n, "iptables", "-w", "-N", "FOREIGN")
	execIn(t, n, "iptables", "-w", "-A", "FOREIGN", "-p", "tcp", "--dport", "9999", "-j", "RETURN")
	execIn(t, n, "iptables", "-w", "-A", "FORWARD", "-j", "ACCEPT")
	execIn(t, n, "ip6tables", "-w", "-N", "FOREIGN6")
	execIn(t, n, "ipset", "create", "foreign", "hash:ip")
	execIn(t, n, "ipset", "add", "foreign", "192.0.2.7")
	foreign := []string{":FOREIGN - [0:0]", "-A FOREIGN -p tcp -m tcp --dport 9999 -j RETURN", "-A FORWARD -j ACCEPT"}
	checkForeign := func(when string) {
		t.Helper()
		save := iptablesSave(t, n)
		for _, f := range foreign {
			if !strings.Contains(save, f) {
				t.Errorf("%s: iptables-save lost foreign %q:\n%s", when, f, save)
			}
		}
		if s := execIn(t, n, "ip6tables-save"); !strings.Contains(s, ":FOREIGN6") {
			t.Errorf("%s: ip6tables-save lost chain FOREIGN6", when)
		}
		if got := nodeSets(t, n)["foreign"]; !slices.Equal(got, []string{"192.0.2.7"}) {
			t.Errorf("%s: set foreign = %v, want [192.0.2.7]", when, got)
		}
	}

	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "",
	}))
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	syncOnce(t, n, dir)
	expectMatrix(t, "synced", pods, pods,
		"default/web>default/db", "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web")
	checkForeign("after sync")
	web, db, other := pods[0], pods[1], pods[2]
	if db.IP6 == "" {
		t.Fatalf("db has no IPv6 address: %v", db.IPs)
	}
	if !node.Probe(web, db.IP6, "tcp", servePort, denyTimeout) || node.Probe(other, db.IP6, "tcp", servePort, denyTimeout) {
		t.Errorf("over IPv6, want web -> db allowed and other -> db denied")
	}
	if got := wantSets(t, nodeSets(t, n), "db over IPv6", db.IP6, "NETPOL6-GI-"); len(got) != 2 { // its group and NETPOL6-ISO-I
		t.Errorf("db's IPv6 address is in %v", got)
	}
	if s := iptablesSave(t, n); !strings.Contains(s, "-j NETPOL-I-") {
		t.Fatalf("no policy chain after sync:\n%s", s)
	}

	for _, p := range pods {
		if err := n.DelPod(p); err != nil {
			t.Errorf("DEL %s: %v", p.Label(), err)
		}
	}
	for i := 1; i <= 2; i++ {
		stdout, stderr, code := runAgentSplit(t, n, "--uninstall")
		if code != 0 {
			t.Fatalf("uninstall #%d: exit %d\nstdout: %s\nstderr: %s", i, code, stdout, stderr)
		}
		for _, c := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ipset", "list"}} {
			if out := execIn(t, n, c[0], c[1:]...); strings.Contains(out, "NETPOL") {
				t.Errorf("uninstall #%d: %s still shows NETPOL:\n%s", i, c[0], out)
			}
		}
		entries, err := os.ReadDir(n.DataDir)
		if err != nil {
			t.Fatalf("uninstall #%d: data dir: %v", i, err)
		}
		if len(entries) != 0 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("uninstall #%d: data dir not empty: %v", i, names)
		}
		checkForeign("after uninstall")
	}
}
