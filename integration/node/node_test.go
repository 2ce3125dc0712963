package node

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// bridgeNode is a node with the bridge plugin alone (no netpol).
func bridgeNode(t *testing.T, opts Options) *Node {
	t.Helper()
	requireRoot(t)
	opts.BridgeOnly = true
	n := New(t, opts)
	if !hasPlugin(n.CNIPath, "bridge") {
		t.Fatalf("bridge plugin not found in %v; set NETPOL_CNI_PATH", n.CNIPath)
	}
	return n
}

func hasPlugin(path []string, name string) bool {
	for _, d := range path {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return true
		}
	}
	return false
}

func addPods(t *testing.T, n *Node, names ...string) []*Pod {
	t.Helper()
	var pods []*Pod
	for _, name := range names {
		ns, pod, _ := strings.Cut(name, "/")
		p, err := n.AddPod(ns, pod)
		if err != nil {
			t.Fatalf("AddPod %s: %v", name, err)
		}
		pods = append(pods, p)
	}
	return pods
}

func TestPodsReachEachOther(t *testing.T) {
	t.Parallel()
	n := bridgeNode(t, Options{})
	pods := addPods(t, n, "a/x", "b/y")
	for _, p := range pods {
		if err := p.Serve(8080); err != nil {
			t.Fatal(err)
		}
		if err := n.CheckPod(p); err != nil {
			t.Errorf("CHECK %s: %v", p.Label(), err)
		}
	}
	if got := pods[0].IP; !strings.HasPrefix(got, "10.244.1.") {
		t.Errorf("pod IP = %q, want one in %s", got, DefaultSubnet)
	}
	for _, proto := range []string{"tcp", "udp"} {
		got := Matrix(pods, pods, proto, 8080)
		t.Logf("%s/8080:\n%s", proto, got)
		if d := got.Diff(NewTable(Labels(pods), Labels(pods), true)); len(d) > 0 {
			t.Errorf("%s matrix mismatch:\n%s", proto, strings.Join(d, "\n"))
		}
	}
	// The node (host network, kubelet) reaches pods too.
	if !Probe(n, pods[1].IP, "tcp", 8080, 0) {
		t.Errorf("node cannot reach %s", pods[1].Label())
	}
}

func TestClosedPortDenied(t *testing.T) {
	t.Parallel()
	n := bridgeNode(t, Options{})
	pods := addPods(t, n, "a/x", "a/y")
	if err := pods[1].Serve(8080); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"tcp", "udp"} {
		start := time.Now()
		if Probe(pods[0], pods[1].IP, proto, 8081, 0) {
			t.Errorf("%s to closed port 8081 reported allowed", proto)
		}
		if err := ProbeOnce(pods[0], pods[1].IP, proto, 8081, 0); err == nil {
			t.Errorf("%s ProbeOnce to closed port: no error", proto)
		} else {
			t.Logf("%s closed port: %v (%v)", proto, err, time.Since(start))
		}
	}
}

// TestDropIsDenied checks that bridged pod traffic crosses the node's
// FORWARD chain (br_netfilter) and that a dropped probe is reported denied.
func TestDropIsDenied(t *testing.T) {
	t.Parallel()
	n := bridgeNode(t, Options{})
	pods := addPods(t, n, "a/x", "a/y", "b/z")
	for _, p := range pods {
		if err := p.Serve(9090); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, proto := range []string{"tcp", "udp"} {
		if _, err := n.Exec(ctx, "iptables", "-I", "FORWARD", "-p", proto, "--dport", "9090", "-j", "DROP"); err != nil {
			t.Fatal(err)
		}
	}
	want := NewTable(Labels(pods), Labels(pods), false)
	for _, p := range pods {
		want.Set(p.Label(), p.Label(), true) // to itself: never through the bridge
	}
	for _, proto := range []string{"tcp", "udp"} {
		start := time.Now()
		got := MatrixTimeout(pods, pods, proto, 9090, 300*time.Millisecond)
		t.Logf("%s/9090 with FORWARD DROP (%v):\n%s", proto, time.Since(start), got)
		if d := got.Diff(want); len(d) > 0 {
			t.Errorf("%s mismatch:\n%s", proto, strings.Join(d, "\n"))
		}
	}
	save, err := n.IPTablesSave(ctx)
	if err != nil || !strings.Contains(save, "-A FORWARD -p udp -m udp --dport 9090 -j DROP") {
		t.Errorf("iptables-save of the node lacks the DROP rule (err %v):\n%s", err, save)
	}
}

func TestDualStack(t *testing.T) {
	t.Parallel()
	n := bridgeNode(t, Options{Subnet: "10.244.2.0/24", Subnet6: "fd00:10:244:2::/64"})
	pods := addPods(t, n, "a/x", "a/y")
	if err := pods[1].Serve(8080); err != nil {
		t.Fatal(err)
	}
	if pods[0].IP6 == "" || pods[1].IP6 == "" {
		t.Fatalf("no IPv6 addresses: %v %v", pods[0].IPs, pods[1].IPs)
	}
	out, err := n.AddOutside("ext6", []string{"2001:db8:5::7/64", "172.18.0.3/16"})
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Serve(80); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"tcp", "udp"} {
		if err := ProbeOnce(pods[0], pods[1].IP6, proto, 8080, 0); err != nil {
			t.Errorf("%s pod to pod over IPv6: %v", proto, err)
		}
		if err := ProbeOnce(out, pods[1].IP6, proto, 8080, 0); err != nil {
			t.Errorf("%s outside to pod over IPv6: %v", proto, err)
		}
		if err := ProbeOnce(pods[0], out.Addr(), proto, 80, 0); err != nil {
			t.Errorf("%s pod to outside over IPv6: %v", proto, err)
		}
	}
}

func TestOutside(t *testing.T) {
	t.Parallel()
	n := bridgeNode(t, Options{})
	pods := addPods(t, n, "a/x")
	pod := pods[0]
	out, err := n.AddOutside("ext", []string{"172.17.0.5/16", "203.0.113.7/24"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pod.Serve(8080); err != nil {
		t.Fatal(err)
	}
	if err := out.Serve(80); err != nil {
		t.Fatal(err)
	}
	for _, ip := range out.Addrs {
		for _, proto := range []string{"tcp", "udp"} {
			if err := ProbeOnce(out.At(ip), pod.IP, proto, 8080, 0); err != nil {
				t.Errorf("outside %s -> pod %s: %v", ip, proto, err)
			}
			if err := ProbeOnce(pod, ip, proto, 80, 0); err != nil {
				t.Errorf("pod -> outside %s %s: %v", ip, proto, err)
			}
		}
	}
	got := Matrix([]Host{out, out.At("203.0.113.7")}, []*Pod{pod}, "tcp", 8080)
	t.Logf("outside -> pod:\n%s", got)
	if got.Diff(NewTable(got.From, got.To, true)) != nil {
		t.Errorf("outside cannot reach pod:\n%s", got)
	}
}

func TestRawCNI(t *testing.T) {
	t.Parallel()
	n := bridgeNode(t, Options{})
	nsName, path, err := n.NewPodNetNS()
	if err != nil {
		t.Fatal(err)
	}
	cid, err := NewContainerID()
	if err != nil {
		t.Fatal(err)
	}
	args := PodArgs{Namespace: "a", Name: "raw", ContainerID: cid, NetNSPath: path}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := n.AddPodArgs(ctx, args); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if err := n.CheckPodArgs(ctx, args); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := n.DelPodArgs(ctx, args, NoCache); err != nil {
		t.Errorf("DEL without cache: %v", err)
	}
	if err := n.DelPodArgs(ctx, args, UseCache); err != nil {
		t.Errorf("DEL with cache: %v", err)
	}
	if err := n.DelPodArgs(ctx, args, UseCache); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if out, _ := execIn(ctx, nsName, "ip", "-o", "link"); strings.Contains(string(out), "eth0") {
		t.Errorf("eth0 still in pod namespace after DEL:\n%s", out)
	}

	// One plugin alone, with and without prevResult.
	p := addPods(t, n, "a/single")[0]
	if _, err := n.InvokePlugin(ctx, "CHECK", "bridge", p.Args(), p.Result); err != nil {
		t.Errorf("bridge CHECK with prevResult: %v", err)
	}
	if _, err := n.InvokePlugin(ctx, "CHECK", "bridge", p.Args(), nil); err == nil {
		t.Error("bridge CHECK without prevResult succeeded")
	}
	if _, err := n.InvokePlugin(ctx, "ADD", "netpol", p.Args(), nil); err == nil {
		t.Error("InvokePlugin of a plugin not in the chain succeeded")
	}

	// GC deletes cached attachments that are not valid, and keeps valid ones.
	keep, drop := addPods(t, n, "a/keep")[0], addPods(t, n, "a/drop")[0]
	if err := n.GC([]types.GCAttachment{keep.Attachment()}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, _, err := linkState(ctx, n.NetNS, drop.HostVeth); err == nil {
		t.Errorf("GC left the veth of %s", drop.Label())
	}
	if _, _, err := linkState(ctx, n.NetNS, keep.HostVeth); err != nil {
		t.Errorf("GC removed the veth of %s: %v", keep.Label(), err)
	}
}

// TestCloseLeavesNothing checks that Close removes every namespace and that
// the root namespace never saw any of our links.
func TestCloseLeavesNothing(t *testing.T) {
	requireRoot(t)
	before := rootLinks(t)
	n, err := Create(Options{BridgeOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	pods := addPods(t, n, "a/x", "a/y")
	if _, err := n.AddOutside("ext", []string{"172.17.0.5/16"}); err != nil {
		t.Fatal(err)
	}
	if err := pods[0].Serve(8080); err != nil {
		t.Fatal(err)
	}
	if !Probe(pods[1], pods[0].IP, "tcp", 8080, 0) {
		t.Fatal("pods cannot talk")
	}
	ours := []string{n.Bridge, pods[0].HostVeth, pods[1].HostVeth, "np-out0"}
	during := rootLinks(t)
	nsNames := []string{n.NetNS, pods[0].NetNS, pods[1].NetNS}
	tmp := n.tmp
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	after := rootLinks(t)
	for _, snap := range [][]string{during, after} {
		for _, l := range ours {
			if slices.Contains(snap, l) && !slices.Contains(before, l) {
				t.Errorf("link %q appeared in the root namespace", l)
			}
		}
	}
	if added := newNames(before, after); len(added) > 0 {
		t.Logf("links new in the root namespace (other work on the machine?): %v", added)
	}
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range nsNames {
		if _, err := os.Stat(netnsPath(name)); !os.IsNotExist(err) {
			t.Errorf("netns %s still exists after Close (stat err %v)", name, err)
		}
		if strings.Contains(string(list), name) {
			t.Errorf("ip netns list still shows %s", name)
		}
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temp dir %s still exists after Close", tmp)
	}
	if _, err := n.AddPod("a", "late"); err == nil {
		t.Error("AddPod after Close succeeded")
	}
}

// rootLinks lists link names of the test process's (root) namespace.
func rootLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			names = append(names, name)
		}
	}
	return names
}

func newNames(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	return out
}

func TestCNIVersion11(t *testing.T) {
	t.Parallel()
	n := bridgeNode(t, Options{CNIVersion: "1.1.0"})
	pods := addPods(t, n, "a/x", "a/y")
	if err := n.Status(); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	if err := n.GC([]types.GCAttachment{pods[0].Attachment()}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if err := n.CheckPod(pods[0]); err != nil {
		t.Errorf("CHECK of the kept pod after GC: %v", err)
	}
	if err := n.DelPod(pods[0]); err != nil {
		t.Errorf("DEL: %v", err)
	}
}

func TestSweep(t *testing.T) {
	requireRoot(t)
	n, err := Create(Options{BridgeOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	if _, err := n.AddPod("a", "x"); err != nil {
		t.Fatal(err)
	}
	if removed, err := Sweep(); err != nil || slices.Contains(removed, n.NetNS) {
		t.Fatalf("Sweep removed a live node: %v, %v", removed, err)
	}
	// Pretend the owner died.
	if err := os.WriteFile(filepath.Join(n.tmp, ownerFile), []byte("999999999 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{n.NetNS, "np-pod-" + n.suffix + "-1"}
	if !slices.Equal(removed, want) {
		t.Errorf("Sweep removed %v, want %v", removed, want)
	}
	if _, err := os.Stat(n.tmp); !os.IsNotExist(err) {
		t.Errorf("Sweep left %s", n.tmp)
	}
}
