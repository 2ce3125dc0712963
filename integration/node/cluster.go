package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
)

// Multi-node topology.
//
// A Cluster is N nodes (N network namespaces, each a Node with its own
// bridge, CNI chain, data dirs and agent) joined by an underlay: one more
// namespace, np-ul-<node-1 suffix>-K, holding a Linux bridge "ul0" into which
// every node is plugged by a veth pair (node side "ul0"). Addresses:
//
//	node i (1-based)   name node-i, pod subnet 10.244.i.0/24 (gateway .1 on the
//	                   node's bridge), underlay address 198.51.100.i/24
//	                   (TEST-NET-2), and one route per other node j, as
//	                   flannel's host-gw backend installs them:
//	                   ip route add 10.244.j.0/24 via 198.51.100.j dev ul0
//	cluster CIDR       10.244.0.0/16 (FLANNEL_NETWORK)
//
// With IPv6 pods (ClusterOptions.Node.Family IPv6 or DualStack) the same
// again for IPv6: pod subnet fd00:10:244:i::/64 (gateway ::1), underlay
// address 2001:db8:100::i/64, routes
// ip -6 route add fd00:10:244:j::/64 via 2001:db8:100::j dev ul0, and the
// cluster CIDR fd00:10:244::/48 (FLANNEL_IPV6_NETWORK). An IPv6-only
// cluster has no IPv4 pod subnets, but its underlay keeps its IPv4
// addresses (unused by pods).
//
// Pod-to-pod traffic between nodes is therefore routed (pod -> bridge ->
// node FORWARD -> ul0 -> other node FORWARD -> its bridge -> pod), and
// same-node traffic is bridged, exactly the two paths netpol enforces.
//
// Masquerade. The bridge plugin's ipMasq=true masquerades everything that
// leaves the node's own subnet, so the receiving node would see the
// sending node's address instead of the pod's and NetworkPolicy peers
// could not match. A cluster therefore gives the bridge plugin
// ipMasq=false (Options.BridgeConf) unless the template says otherwise. A flannel chain gets
// FLANNEL_IPMASQ=true in subnet.env (the flannel plugin then tells the
// bridge ipMasq=false), and with ClusterOptions.FlannelDaemon the nodes get
// the masquerade flanneld --ip-masq installs, which leaves traffic inside
// the cluster CIDR alone.
//
// Agents. Every node's agent reads the same manifests, as every agent of a
// real cluster watches the same API server: each Pod carries spec.nodeName
// (the Name of the Node it was placed on) and, once it has them,
// status.podIPs; each agent runs with NODE_NAME set to its node's name and
// treats the pods of other nodes as peers. RunAgents syncs all of them.
//
// Running a single-node suite across nodes (e.g. integration/conformance):
//
//	c := node.NewCluster(t, node.ClusterOptions{Nodes: 3})        // bridge chain
//	c := node.NewCluster(t, node.ClusterOptions{Nodes: 3,         // flannel chain
//		Node: node.Options{Conflist: flannelConflist}, FlannelDaemon: true})
//	p, err := c.Place(i).AddPod(ns, name)   // pod i on node i mod N (round-robin)
//	// manifests: spec.nodeName = p.Node().Name, status.podIPs = p.IPs
//	err = c.RunAgents("--manifests", dir, "--once")
//
// On fresh nodes, host-local hands out .2, .3, ... of each node's subnet in
// ADD order, so pods added in index order get PlacedIP(i). In
// policies-first order the other nodes only learn a pod's IP from its
// status.podIPs: either write the predicted PlacedIP(i) into the manifests
// before ADD (then no sync is needed after ADD, every node knows every
// peer), or, as in a real cluster where the kubelet reports the IP after
// ADD: write, sync, ADD, write the IPs, sync, probe.
type Cluster struct {
	Nodes    []*Node
	Underlay string // netns name of the underlay switch
	CIDR     string // cluster CIDR, 10.244.0.0/16
	CIDR6    string // IPv6 cluster CIDR, fd00:10:244::/48

	opts ClusterOptions
}

// ClusterOptions configures a Cluster.
type ClusterOptions struct {
	// Nodes is the number of nodes; default DefaultClusterNodes, at most
	// MaxClusterNodes.
	Nodes int
	// Node is the template of every node's Options. Name, Subnet and
	// Subnet6 are set per node (Name "node-i", or "<Name>-i" when the
	// template has one; Subnet 10.244.i.0/24 and, when Family has IPv6,
	// Subnet6 fd00:10:244:i::/64); ClusterCIDR and ClusterCIDR6 are the
	// cluster's. BridgeConf gets "ipMasq": false unless it sets ipMasq
	// itself.
	Node Options
	// FlannelDaemon installs in every node what flanneld (host-gw,
	// --ip-masq) installs besides routes: nat POSTROUTING -> FLANNEL-POSTRTG
	// (RETURN inside the cluster CIDR, MASQUERADE pod traffic leaving it)
	// and filter FORWARD -> FLANNEL-FWD (ACCEPT from and to the cluster
	// CIDR, appended after netpol's jump, as flanneld appends it).
	FlannelDaemon bool
}

// Cluster constants.
const (
	DefaultClusterNodes = 3
	MaxClusterNodes     = 16
	// UnderlayDev is the node side of the underlay veth (and the bridge in
	// the underlay namespace).
	UnderlayDev = "ul0"
	// UnderlayPrefix is the underlay network: node i is UnderlayPrefix.i/24.
	UnderlayPrefix = "198.51.100"
)

// ClusterSubnet is the pod subnet of node i (0-based): 10.244.<i+1>.0/24.
func ClusterSubnet(i int) string { return fmt.Sprintf("10.244.%d.0/24", i+1) }

// NewCluster creates a cluster for a test and removes it in t.Cleanup,
// logging every node's state first when the test failed.
func NewCluster(t TB, o ClusterOptions) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("node.NewCluster: must run as root")
	}
	if removed, err := Sweep(); err != nil || len(removed) > 0 {
		t.Logf("swept leftovers of dead test processes: %v (errors: %v)", removed, err)
	}
	c, err := CreateCluster(o)
	if err != nil {
		t.Fatalf("node.NewCluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("state of the cluster at failure:\n%s", c.Dump())
		}
		if err := c.Close(); err != nil {
			t.Logf("closing cluster: %v", err)
		}
	})
	return c
}

// CreateCluster makes a cluster; the caller must Close it.
func CreateCluster(o ClusterOptions) (_ *Cluster, err error) {
	if o.Nodes == 0 {
		o.Nodes = DefaultClusterNodes
	}
	if o.Nodes < 1 || o.Nodes > MaxClusterNodes {
		return nil, fmt.Errorf("cluster: %d nodes, want 1..%d", o.Nodes, MaxClusterNodes)
	}
	c := &Cluster{CIDR: DefaultClusterCIDR, CIDR6: DefaultClusterCIDR6, opts: o}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	for i := range o.Nodes {
		opts := o.Node
		opts.Name = fmt.Sprintf("node-%d", i+1)
		if o.Node.Name != "" {
			opts.Name = fmt.Sprintf("%s-%d", o.Node.Name, i+1)
		}
		opts.Subnet = ClusterSubnet(i)
		opts.Subnet6 = ""
		if o.Node.Family.Has6() || o.Node.Subnet6 != "" {
			opts.Subnet6 = ClusterSubnet6(i)
		}
		opts.ClusterCIDR, opts.ClusterCIDR6 = c.CIDR, c.CIDR6
		opts.BridgeConf = maps.Clone(o.Node.BridgeConf)
		if _, ok := opts.BridgeConf["ipMasq"]; !ok {
			if opts.BridgeConf == nil {
				opts.BridgeConf = map[string]any{}
			}
			opts.BridgeConf["ipMasq"] = false
		}
		n, err := Create(opts)
		if err != nil {
			return nil, fmt.Errorf("cluster node %d: %w", i+1, err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.wire(); err != nil {
		return nil, fmt.Errorf("cluster underlay: %w", err)
	}
	if o.FlannelDaemon {
		for _, n := range c.Nodes {
			if err := c.flannelDaemonRules(n); err != nil {
				return nil, fmt.Errorf("cluster %s: flanneld rules: %w", n.Name, err)
			}
		}
	}
	return c, nil
}

// wire builds the underlay and the host-gw routes.
//
// Equivalent to:
//
//	ip netns add UL; ip -n UL link add ul0 type bridge; ip -n UL link set ul0 up
//	ip netns exec UL sysctl -w net.bridge.bridge-nf-call-iptables=0   (a plain switch)
//	for node i: ip -n NODE link add ul0 type veth peer name n<i> netns UL
//	            ip -n UL link set n<i> master ul0 up
//	            ip -n NODE addr add 198.51.100.<i>/24 dev ul0; ip -n NODE link set ul0 up
//	for node i, every other node j: ip -n NODE_i route add 10.244.j.0/24 via 198.51.100.j dev ul0
//
// and with IPv6 pods, on each node: ip -n NODE addr add 2001:db8:100::<i>/64 dev ul0 nodad,
// ip -n NODE_i -6 route add fd00:10:244:j::/64 via 2001:db8:100::j dev ul0.
func (c *Cluster) wire() error {
	ul, err := c.Nodes[0].nextName("ul") // deleted with node 1
	if err != nil {
		return err
	}
	if err := createNetNS(ul); err != nil {
		return errors.Join(err, deleteNetNS(ul))
	}
	c.Underlay = ul
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmds := [][]string{
		{ul, "link", "add", UnderlayDev, "type", "bridge"},
		{ul, "link", "set", UnderlayDev, "up"},
	}
	ports := []string{UnderlayDev}
	for i, n := range c.Nodes {
		n.UnderlayIP = fmt.Sprintf("%s.%d", UnderlayPrefix, i+1)
		if n.Subnet6 != "" {
			n.UnderlayIP6 = fmt.Sprintf("%s:%x", UnderlayPrefix6, i+1)
		}
		port := fmt.Sprintf("n%d", i+1)
		ports = append(ports, port)
		cmds = append(cmds,
			[]string{n.NetNS, "link", "add", UnderlayDev, "type", "veth", "peer", "name", port, "netns", ul},
			[]string{ul, "link", "set", port, "master", UnderlayDev},
			[]string{ul, "link", "set", port, "up"},
			[]string{n.NetNS, "addr", "add", n.UnderlayIP + "/24", "dev", UnderlayDev},
		)
		if n.UnderlayIP6 != "" {
			cmds = append(cmds, []string{n.NetNS, "addr", "add", n.UnderlayIP6 + "/64", "dev", UnderlayDev, "nodad"})
		}
		cmds = append(cmds, []string{n.NetNS, "link", "set", UnderlayDev, "up"})
	}
	for _, n := range c.Nodes {
		for _, m := range c.Nodes {
			if m == n {
				continue
			}
			if m.Subnet != "" {
				cmds = append(cmds, []string{n.NetNS, "route", "add", m.Subnet, "via", m.UnderlayIP, "dev", UnderlayDev})
			}
			if m.Subnet6 != "" {
				cmds = append(cmds, []string{n.NetNS, "-6", "route", "add", m.Subnet6, "via", m.UnderlayIP6, "dev", UnderlayDev})
			}
		}
	}
	for _, cmd := range cmds {
		if _, err := ipIn(ctx, cmd[0], cmd[1:]...); err != nil {
			return err
		}
	}
	// The underlay is a plain switch: no iptables on its bridge.
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		if _, err := execIn(ctx, ul, "sysctl", "-q", "-w",
			"net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0"); err != nil {
			return err
		}
	}
	if err := waitLinks(ctx, ul, ports...); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := waitLinks(ctx, n.NetNS, UnderlayDev); err != nil {
			return err
		}
	}
	return nil
}

// flannelDaemonRules installs what flanneld --ip-masq adds to a node's
// tables (see ClusterOptions.FlannelDaemon).
func (c *Cluster) flannelDaemonRules(n *Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if n.Subnet != "" {
		if err := flannelRules(ctx, n, "iptables", c.CIDR, "224.0.0.0/4"); err != nil {
			return err
		}
	}
	if n.Subnet6 != "" {
		return flannelRules(ctx, n, "ip6tables", c.CIDR6, "ff00::/8")
	}
	return nil
}

// flannelRules installs flanneld's masquerade and forward rules of one
// family (cmd iptables or ip6tables) for the cluster CIDR cidr.
func flannelRules(ctx context.Context, n *Node, cmd, cidr, multicast string) error {
	for _, args := range [][]string{
		{"-t", "nat", "-N", "FLANNEL-POSTRTG"},
		{"-t", "nat", "-A", "POSTROUTING", "-m", "comment", "--comment", "flanneld masq", "-j", "FLANNEL-POSTRTG"},
		{"-t", "nat", "-A", "FLANNEL-POSTRTG", "-s", cidr, "-d", cidr, "-m", "comment", "--comment", "flanneld masq", "-j", "RETURN"},
		{"-t", "nat", "-A", "FLANNEL-POSTRTG", "-s", cidr, "!", "-d", multicast, "-m", "comment", "--comment", "flanneld masq", "-j", "MASQUERADE", "--random-fully"},
		{"-t", "filter", "-N", "FLANNEL-FWD"},
		{"-t", "filter", "-A", "FORWARD", "-m", "comment", "--comment", "flanneld forward", "-j", "FLANNEL-FWD"},
		{"-t", "filter", "-A", "FLANNEL-FWD", "-s", cidr, "-m", "comment", "--comment", "flanneld forward", "-j", "ACCEPT"},
		{"-t", "filter", "-A", "FLANNEL-FWD", "-d", cidr, "-m", "comment", "--comment", "flanneld forward", "-j", "ACCEPT"},
	} {
		if _, err := n.Exec(ctx, cmd, append([]string{"-w", "5"}, args...)...); err != nil {
			return err
		}
	}
	return nil
}

// Close closes every node (the underlay goes with node 1). It is safe to
// call twice.
func (c *Cluster) Close() error {
	var errs []error
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		errs = append(errs, c.Nodes[i].Close())
	}
	return errors.Join(errs...)
}

// Place returns the node of pod i in round-robin placement: node i mod N.
func (c *Cluster) Place(i int) *Node { return c.Nodes[i%len(c.Nodes)] }

// PlacedIP is the IPv4 address host-local gives pod i when pods are added
// in index order, round-robin, on fresh nodes: .2+i/N of node (i mod N)'s
// subnet.
func (c *Cluster) PlacedIP(i int) string {
	return fmt.Sprintf("10.244.%d.%d", i%len(c.Nodes)+1, 2+i/len(c.Nodes))
}

// PlacedIP6 is PlacedIP's IPv6 twin (see node.PlacedIP6).
func (c *Cluster) PlacedIP6(i int) string { return PlacedIP6(i, len(c.Nodes)) }

// NodeNamed returns the node with Kubernetes name name, or nil.
func (c *Cluster) NodeNamed(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// RunAgents runs `netpol-agent args...` to completion on every node at
// once (each with its own --data-dir and NODE_NAME, see RunAgent). The
// error names each node that failed, with its output.
func (c *Cluster) RunAgents(args ...string) error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := n.RunAgent(args...); err != nil {
				errs[i] = fmt.Errorf("%s: %w\n%s", n.Name, err, out)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RoutePod points every other node at node to for one pod address (a
// /32 or /128 host route over the underlay, as an IPAM with movable
// addresses installs), and removes such a route from to itself, where the
// pod is on the bridge. Use it for pods with a pinned address outside the
// node's own subnet (Options.ExtraRanges), and again after such a pod moves.
//
// Equivalent to: ip -n OTHER route replace IP/32 via <to's underlay IP> dev ul0
// on every other node, and ip -n TO route del IP/32 (if present).
func (c *Cluster) RoutePod(ip string, to *Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	host, via := hostRoute(ip), to.UnderlayIP
	if strings.HasSuffix(host, "/128") {
		via = to.UnderlayIP6
	}
	for _, n := range c.Nodes {
		if n == to {
			out, err := ipIn(ctx, n.NetNS, "route", "show", host)
			if err != nil {
				return err
			}
			if strings.TrimSpace(string(out)) != "" {
				if _, err := ipIn(ctx, n.NetNS, "route", "del", host); err != nil {
					return err
				}
			}
			continue
		}
		if _, err := ipIn(ctx, n.NetNS, "route", "replace", host, "via", via, "dev", UnderlayDev); err != nil {
			return err
		}
	}
	return nil
}

// Dump returns every node's state (see Node.Dump) and the underlay's links.
func (c *Cluster) Dump() string {
	var b strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "======== node %s (%s, underlay %s)\n%s", n.Name, n.NetNS, n.UnderlayIP, n.Dump())
	}
	if c.Underlay != "" {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		out, err := ipIn(ctx, c.Underlay, "-br", "link")
		fmt.Fprintf(&b, "======== underlay %s\n%s", c.Underlay, out)
		if err != nil {
			fmt.Fprintf(&b, "(error: %v)\n", err)
		}
	}
	return b.String()
}
