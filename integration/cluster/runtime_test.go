package cluster_test

// Tests of netpol driven by a real container runtime: containerd 2.x's CRI
// plugin runs pod sandboxes (crictl runp) on a node namespace and calls the
// shipped CNI chain (bridge → netpol → portmap) itself.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/cluster/runtime"
	"github.com/netpol/netpol/integration/node"
)

// TestRuntimeRunsPod: containerd creates a pod sandbox from our pause
// image; the chain gives it an IP in the node's subnet, netpol records
// it, and the node reaches a server inside the pod.
func TestRuntimeRunsPod(t *testing.T) {
	e := newRuntimeEnv(t, runtimeOptions{})
	p := e.runPod(t, "default", "smoke", map[string]string{"app": "smoke"})
	_, subnet, _ := net.ParseCIDR(e.node.Subnet)
	if ip := net.ParseIP(p.IP); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("pod IP %q not in the node's subnet %s", p.IP, e.node.Subnet)
	}
	srv, err := node.Serve(p.NetNS, p.IP, 8080)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !node.Probe(e.node, p.IP, "tcp", 8080, 2*time.Second) {
		t.Fatalf("node cannot reach pod %s at %s:8080", p.ID, p.IP)
	}
	for _, c := range e.calls.Calls(t) {
		t.Logf("CNI %s %s cniVersion=%s CNI_ARGS=%s", c.Plugin, c.Command, c.Version, c.Args)
	}
}

// TestRuntimePolicyIsolatesPods: pods that containerd created are
// isolated by a NetworkPolicy that netpol-agent applies from manifests, on
// real TCP: prod/db admits only app=web; a pod no policy selects stays
// open; removing the policy opens db again.
func TestRuntimePolicyIsolatesPods(t *testing.T) {
	e := newRuntimeEnv(t, runtimeOptions{})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-pods.yaml"), podsManifest("prod", map[string]string{
		"db": "db", "web": "web", "other": "other",
	}))
	writeFile(t, filepath.Join(dir, "20-policy.yaml"), dbFromWebPolicy("prod"))
	e.syncAgent(t, dir)

	db := e.runPod(t, "prod", "db", map[string]string{"app": "db"})
	web := e.runPod(t, "prod", "web", map[string]string{"app": "web"})
	other := e.runPod(t, "prod", "other", map[string]string{"app": "other"})
	for _, p := range []*runtime.Pod{db, other} {
		srv, err := node.Serve(p.NetNS, p.IP, 8080)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
	}
	expect := func(phase string, from, to *runtime.Pod, want bool) {
		t.Helper()
		if got := node.Probe(source(from), to.IP, "tcp", 8080, 2*time.Second); got != want {
			t.Errorf("%s: %s -> %s:8080 reachable = %v, want %v", phase, from.Name, to.Name, got, want)
		}
	}
	expect("policy", web, db, true)
	expect("policy", other, db, false)
	expect("policy", web, other, true) // no policy selects other
	expect("policy", db, other, true)
	if t.Failed() {
		t.Logf("iptables of the node:\n%s", e.dump(t))
		return
	}

	if err := os.Remove(filepath.Join(dir, "20-policy.yaml")); err != nil {
		t.Fatal(err)
	}
	e.syncAgent(t, dir)
	expect("policy removed", other, db, true)
}

// TestRuntimeTeardownLeavesNothing: DEL from containerd itself (crictl
// stopp, then rmp; and for a second pod, stopp/rmp after a containerd
// restart) removes the pod's netpol record, its set memberships, its
// host-local address, its veth and the runtime's netns pin: nothing is
// left behind. The pod survives the restart and still serves.
func TestRuntimeTeardownLeavesNothing(t *testing.T) {
	e := newRuntimeEnv(t, runtimeOptions{})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-pods.yaml"), podsManifest("prod", map[string]string{"db": "db", "web": "web"}))
	writeFile(t, filepath.Join(dir, "20-policy.yaml"), dbFromWebPolicy("prod"))
	e.syncAgent(t, dir)
	db := e.runPod(t, "prod", "db", map[string]string{"app": "db"})
	web := e.runPod(t, "prod", "web", map[string]string{"app": "web"})

	st := e.state(t)
	for _, p := range []*runtime.Pod{db, web} {
		if !st.has(p) {
			t.Fatalf("after runp, pod %s is not fully set up: %s", p.Name, st)
		}
	}
	if len(st.veths) != 2 || len(st.netns) != 2 {
		t.Fatalf("after runp: %s; want 2 veths and 2 netns pins", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.rt.StopPod(ctx, db.ID); err != nil {
		t.Fatal(err)
	}
	if st := e.state(t); st.any(db) || len(st.veths) != 1 || !st.has(web) {
		t.Errorf("after stopp %s: %s; want nothing of db, web intact", db.Name, st)
	}
	if err := e.rt.RemovePod(ctx, db.ID); err != nil {
		t.Fatal(err)
	}
	if st := e.state(t); st.any(db) || len(st.netns) != 1 || !st.has(web) {
		t.Errorf("after rmp %s: %s; want nothing of db, web intact", db.Name, st)
	}

	e.calls.reset(t)
	if err := e.rt.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if calls := e.calls.Calls(t); len(calls) != 0 {
		t.Errorf("containerd restart made CNI calls %v; want none", calls)
	}
	srv, err := node.Serve(web.NetNS, web.IP, 8080)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !node.Probe(e.node, web.IP, "tcp", 8080, 2*time.Second) {
		t.Errorf("after the restart the node cannot reach pod %s", web.Name)
	}
	if err := e.rt.StopPod(ctx, web.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemovePod(ctx, web.ID); err != nil {
		t.Fatal(err)
	}
	if st := e.state(t); !st.empty() {
		t.Errorf("after stopp/rmp of every pod: %s; want nothing left", st)
	}
}

// TestRuntimeCloseAfterCrash: when containerd dies with pods running (as
// after a failed test), Close still leaves nothing: the shims and the
// pods' processes are killed, the pods' network namespaces (and so their
// veths) vanish, and the cgroups runc made are removed.
func TestRuntimeCloseAfterCrash(t *testing.T) {
	e := newRuntimeEnv(t, runtimeOptions{})
	pods := []*runtime.Pod{
		e.runPod(t, "default", "a", nil),
		e.runPod(t, "default", "b", nil),
	}
	pids := []int{e.rt.PID()}
	for _, p := range pods {
		pids = append(pids, p.PID)
		if pp := parentPID(t, p.PID); pp > 1 {
			pids = append(pids, pp) // the pod's shim
		}
	}
	if err := syscall.Kill(e.rt.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && alive(pids[0]); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	holder := e.rt.HolderPID
	if err := e.rt.Close(); err != nil {
		t.Fatalf("Close after containerd's crash: %v", err)
	}
	for _, pid := range append(pids, holder) {
		if alive(pid) {
			t.Errorf("pid %d (%s) still alive after Close", pid, comm(pid))
		}
	}
	if cgs, _ := filepath.Glob("/sys/fs/cgroup/*" + e.rt.CgroupParent); len(cgs) > 0 {
		t.Errorf("cgroups left after Close: %v", cgs)
	}
	// The kernel destroys a network namespace, and the veth in it, in a
	// work queue after its last user is gone: wait for that (at most 10 s).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []byte
	var err error
	for i := 0; i < 100; i++ {
		if out, err = e.node.Exec(ctx, "ip", "-o", "link", "show", "type", "veth"); err != nil || len(out) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || len(out) > 0 {
		t.Errorf("veths left on the node 10 s after Close: %q (%v)", out, err)
	}
}

// parentPID reads a process's parent pid from /proc/PID/stat.
func parentPID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	pp, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return pp
}

// alive reports whether a process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// TestRuntimeConfDirInOverlay: a conf dir under a shadowed directory
// (as /etc/cni/net.d is for the DaemonSet) is created and written inside
// the runtime's mount namespace only: containerd reads the conflist there
// and a pod gets its address, while the machine's /etc stays untouched. A
// conf dir that would be the machine's is refused.
func TestRuntimeConfDirInOverlay(t *testing.T) {
	confDir := fmt.Sprintf("/etc/netpol-rt-test-%d/net.d", os.Getpid())
	e := newRuntimeEnv(t, runtimeOptions{confDir: confDir})
	p := e.runPod(t, "default", "overlay", nil)
	if _, err := os.Stat(filepath.Join(e.rt.HostPath(confDir), "10-policy.conflist")); err != nil {
		t.Errorf("conflist inside the runtime's mount namespace: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(confDir)); !os.IsNotExist(err) {
		t.Errorf("the machine's %s: %v; want it not to exist", filepath.Dir(confDir), err)
	}
	t.Logf("pod %s got %s with the conflist in %s", p.Name, p.IP, confDir)

	_, err := runtime.Start(context.Background(), runtime.Options{
		Dir: t.TempDir(), NetNS: e.node.NetNSPath, CNIBinDirs: e.node.CNIPath, ConfDir: "/srv/netpol-rt-test/net.d",
	})
	if err == nil || !strings.Contains(err.Error(), "/srv/netpol-rt-test/net.d") {
		t.Errorf("Start with a conf dir of the machine: %v; want a refusal naming it", err)
	}
	if _, err := os.Stat("/srv/netpol-rt-test"); !os.IsNotExist(err) {
		t.Errorf("/srv/netpol-rt-test: %v; want it not to exist", err)
	}
}
