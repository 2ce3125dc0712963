package node

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localNode is a Node with its directories set but no namespace, enough
// for localizeConflist.
func localNode(t *testing.T) *Node {
	dir := t.TempDir()
	n := &Node{Subnet: "10.244.2.0/24", Gateway: "10.244.2.1", tmp: dir,
		DataDir: filepath.Join(dir, "netpol"), IPAMDir: filepath.Join(dir, "ipam"),
		SubnetEnv: filepath.Join(dir, "subnet.env"), opts: withDefaults(Options{Subnet: "10.244.2.0/24"})}
	return n
}

// TestLocalizeShippedConflists moves the repo's conflists onto a test
// node: no host-wide path is left, and each plugin keeps state where the
// node says.
func TestLocalizeShippedConflists(t *testing.T) {
	for _, name := range []string{"10-policy.conflist", "10-policy-flannel.conflist"} {
		t.Run(name, func(t *testing.T) {
			in, err := RepoFile(name)
			if err != nil {
				t.Fatal(err)
			}
			n := localNode(t)
			out, flannel, err := n.localizeConflist(in)
			if err != nil {
				t.Fatal(err)
			}
			if flannel != strings.Contains(name, "flannel") {
				t.Errorf("flannel = %v", flannel)
			}
			var list struct {
				Plugins []map[string]any `json:"plugins"`
			}
			if err := json.Unmarshal(out, &list); err != nil {
				t.Fatal(err)
			}
			for _, p := range list.Plugins {
				ipam, _ := p["ipam"].(map[string]any)
				switch p["type"] {
				case "netpol":
					if p["dataDir"] != n.DataDir {
						t.Errorf("netpol dataDir %v", p["dataDir"])
					}
				case "bridge":
					if ipam["dataDir"] != n.IPAMDir || !strings.Contains(string(out), `"subnet": "10.244.2.0/24"`) {
						t.Errorf("bridge ipam %v", ipam)
					}
				case "flannel":
					if p["subnetFile"] != n.SubnetEnv || p["dataDir"] != filepath.Join(n.tmp, "flannel") || ipam["dataDir"] != n.IPAMDir {
						t.Errorf("flannel %v", p)
					}
				}
			}
			var all any
			if err := json.Unmarshal(out, &all); err != nil {
				t.Fatal(err)
			}
			if p := hostPath(all); p != "" {
				t.Errorf("host path %q left in:\n%s", p, out)
			}
		})
	}
	n := localNode(t)
	if _, _, err := n.localizeConflist([]byte(`{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"other","stateDir":"/var/lib/cni/other"}]}`)); err == nil {
		t.Error("a conflist naming /var/lib/cni/other was accepted")
	}
}

func TestSubnetEnv(t *testing.T) {
	n := localNode(t)
	e, err := n.defaultSubnetEnv()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.WriteSubnetEnv(e); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(n.SubnetEnv)
	want := "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n"
	if string(b) != want {
		t.Errorf("subnet.env:\n%s\nwant:\n%s", b, want)
	}
}

// TestClusterCrossNode: three bridge-only nodes, pods placed round-robin
// get PlacedIP, reach each other across nodes through the host-gw routes,
// and a pod on a second network with a pinned address is reachable from
// every node once RoutePod points them at it, before and after it moves.
func TestClusterCrossNode(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	c := NewCluster(t, ClusterOptions{Nodes: 3, Node: Options{BridgeOnly: true}})
	var pods []*Pod
	for i := range 6 {
		p, err := c.Place(i).AddPod("ns", string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		if p.IP != c.PlacedIP(i) || p.Node() != c.Nodes[i%3] {
			t.Errorf("pod %d: %s on %s, want %s on %s", i, p.IP, p.Node().Name, c.PlacedIP(i), c.Nodes[i%3].Name)
		}
		if err := p.Serve(8080); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	got := MatrixTimeout(pods, pods, "tcp", 8080, 2*time.Second)
	if d := got.Diff(NewTable(Labels(pods), Labels(pods), true)); len(d) > 0 {
		t.Errorf("cross-node matrix:\n%s\n%s", got, strings.Join(d, "\n"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, n := range c.Nodes {
		out, err := n.Exec(ctx, "ip", "route")
		if err != nil {
			t.Fatal(err)
		}
		for j, m := range c.Nodes {
			want := m.Subnet + " via " + m.UnderlayIP + " dev " + UnderlayDev
			if has := strings.Contains(string(out), want); has != (i != j) {
				t.Errorf("%s: route %q present=%v:\n%s", n.Name, want, has, out)
			}
		}
	}

	// A pinned address on a second network, moving from node-1 to node-3.
	const ip = "10.244.250.7"
	mob := PodOptions{IP: ip, Bridge: "cni1", Subnet: "10.244.250.0/24"}
	for _, to := range []*Node{c.Nodes[0], c.Nodes[2]} {
		p, err := to.AddPodOpts("ns", "mobile", mob)
		if err != nil {
			t.Fatal(err)
		}
		if p.IP != ip || p.Bridge != "cni1" {
			t.Fatalf("mobile pod: %s on %s", p.IP, p.Bridge)
		}
		if err := p.Serve(8080); err != nil {
			t.Fatal(err)
		}
		if err := c.RoutePod(ip, to); err != nil {
			t.Fatal(err)
		}
		if err := to.CheckPod(p); err != nil {
			t.Errorf("CHECK mobile pod on %s: %v", to.Name, err)
		}
		got := MatrixTimeout(pods, []*Pod{p}, "tcp", 8080, 2*time.Second)
		if d := got.Diff(NewTable(Labels(pods), Labels([]*Pod{p}), true)); len(d) > 0 {
			t.Errorf("mobile pod on %s:\n%s\n%s", to.Name, got, strings.Join(d, "\n"))
		}
		if err := to.DelPod(p); err != nil {
			t.Fatalf("DEL mobile pod on %s: %v", to.Name, err)
		}
	}
}
