// Package node builds throwaway Kubernetes "nodes" out of Linux network
// namespaces for netpol's integration tests and demos.
//
// A Node is a network namespace (np-node-<rand>) with forwarding on, its own
// temporary netpol data dir, host-local IPAM dir and libcni cache dir. Pods
// are further namespaces attached through the real CNI chain (bridge, then
// netpol) with libcni, exactly as a container runtime would. Outside hosts
// are namespaces joined to the node by a veth pair. Servers and probes create
// their sockets inside those namespaces from the test process itself.
//
// Nothing is ever created in, or changed in, the caller's (root) network
// namespace: every `ip` command names its namespace with `-n`, and every
// sysctl runs through `ip netns exec`. Close (or the test's Cleanup) removes
// all namespaces and temporary directories, even after a failure.
//
// Where things are found:
//   - CNI plugins: $NETPOL_CNI_PATH (colon separated), else $CNI_PATH, else
//     /opt/cni/bin; the netpol bin dir is searched first.
//   - netpol binaries: $NETPOL_BIN_DIR, else <module root>/bin.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Defaults used when Options leaves a field empty.
const (
	DefaultSubnet     = "10.244.1.0/24"
	DefaultBridge     = "cni0"
	DefaultCNIVersion = "1.0.0"
	DefaultNetwork    = "netpol-test"
)

// cmdTimeout bounds every helper command the harness runs itself.
const cmdTimeout = 30 * time.Second

// Options configures a Node. The zero value is a bridge → netpol node on
// 10.244.1.0/24.
type Options struct {
	// Name is the Kubernetes node name (NODE_NAME for the agent and the
	// label in truth tables). Default: the node's netns name.
	Name string
	// Family is which addresses pods get: IPv4 (Subnet), IPv6 (Subnet6)
	// or DualStack (both). Default IPv4, or DualStack when Subnet6 is set.
	Family Family
	// Subnet is the pod IPv4 subnet handed to host-local (unused when
	// Family is IPv6).
	Subnet string
	// Subnet6 is the pod IPv6 subnet (default DefaultSubnet6 when Family
	// has IPv6).
	Subnet6 string
	// Bridge is the bridge plugin's bridge name.
	Bridge string
	// CNIVersion of the conflist.
	CNIVersion string
	// Network is the conflist's network name.
	Network string
	// BridgeOnly leaves netpol out of the chain (bridge alone).
	BridgeOnly bool
	// BridgeConf is merged over the default bridge plugin config
	// (e.g. {"ipMasq": false}).
	BridgeConf map[string]any
	// NetpolConf is merged over the default netpol plugin config.
	NetpolConf map[string]any
	// ExtraPlugins are appended to the chain after netpol (e.g. portmap).
	ExtraPlugins []map[string]any
	// CNIPath overrides the plugin search path.
	CNIPath []string
	// BinDir overrides where bin/netpol and bin/netpol-agent are found.
	BinDir string
	// Conflist, when set, replaces the generated chain: a conflist written
	// for a real node (e.g. RepoFile("10-policy-flannel.conflist")) whose
	// state paths and IPAM ranges are rewritten into the node's own (see
	// localizeConflist). BridgeConf and NetpolConf are merged into its
	// bridge and netpol plugins; BridgeOnly, ExtraPlugins and CNIVersion
	// do not apply to it.
	Conflist []byte
	// ClusterCIDR is the cluster's pod network: FLANNEL_NETWORK of the
	// node's subnet.env. Default DefaultClusterCIDR.
	ClusterCIDR string
	// ClusterCIDR6 is the cluster's IPv6 pod network
	// (FLANNEL_IPV6_NETWORK). Default DefaultClusterCIDR6.
	ClusterCIDR6 string
}

// Node is a network namespace acting as a Kubernetes node.
type Node struct {
	Name      string // Kubernetes node name
	NetNS     string // netns name, e.g. np-node-1a2b3c4d
	NetNSPath string // /run/netns/<NetNS>
	Family    Family
	Subnet    string // "" on an IPv6-only node
	Subnet6   string // "" on an IPv4-only node
	Gateway   string // first host of Subnet: the bridge's IPv4 address
	Gateway6  string // first host of Subnet6: the bridge's IPv6 address
	Bridge    string
	DataDir   string // netpol's dataDir
	IPAMDir   string // host-local's dataDir
	CacheDir  string // libcni's cache dir
	BinDir    string
	CNIPath   []string
	// SubnetEnv is the node's flannel subnet.env (<tmp>/subnet.env); it is
	// written at Create when the chain holds the flannel plugin.
	SubnetEnv string
	// UnderlayIP and UnderlayIP6 are the node's addresses on a Cluster's
	// underlay (UnderlayIP6 only when the node has IPv6 pods); empty for a
	// node on its own.
	UnderlayIP  string
	UnderlayIP6 string
	// AgentEnv is added to the environment of every agent started after
	// it is set (e.g. a PATH that puts a test's wrappers first).
	AgentEnv []string

	opts     Options
	suffix   string
	tmp      string
	conflist []byte

	mu         sync.Mutex
	seq        int
	outsideSeq int
	netnses    []string // pod and outside namespaces, deleted on Close
	outsides   []*Outside
	servers    []*Server
	agents     []*Agent
	closed     bool
}

// TB is the part of testing.TB that New needs.
type TB interface {
	Helper()
	Cleanup(func())
	Failed() bool
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// New creates a node for a test and removes it in t.Cleanup. It first
// sweeps the leftovers of dead test processes (see Sweep). When the test
// has failed, the node's addresses, routes, iptables and ipsets are logged
// before teardown.
func New(t TB, opts Options) *Node {
	t.Helper()
	if os.Geteuid() != 0 {
		// Callers skip earlier; this keeps the failure readable if they do not.
		t.Fatalf("node.New: must run as root")
	}
	if removed, err := Sweep(); err != nil || len(removed) > 0 {
		t.Logf("swept leftovers of dead test processes: %v (errors: %v)", removed, err)
	}
	n, err := Create(opts)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("state of node %s at failure:\n%s", n.Name, n.Dump())
		}
		if err := n.Close(); err != nil {
			t.Logf("closing node %s: %v", n.Name, err)
		}
	})
	return n
}

// Create makes a node; the caller must Close it.
func Create(opts Options) (_ *Node, err error) {
	opts = withDefaults(opts)
	suffix, err := randomHex(4)
	if err != nil {
		return nil, err
	}
	n := &Node{
		NetNS:   "np-node-" + suffix,
		Family:  opts.Family,
		Subnet:  opts.Subnet,
		Subnet6: opts.Subnet6,
		Bridge:  opts.Bridge,
		opts:    opts,
		suffix:  suffix,
	}
	n.NetNSPath = netnsPath(n.NetNS)
	n.Name = opts.Name
	if n.Name == "" {
		n.Name = n.NetNS
	}
	if n.Subnet != "" {
		if n.Gateway, err = firstHost(n.Subnet); err != nil {
			return nil, fmt.Errorf("subnet %q: %w", n.Subnet, err)
		}
	}
	if n.Subnet6 != "" {
		if n.Gateway6, err = firstHost(n.Subnet6); err != nil {
			return nil, fmt.Errorf("subnet6 %q: %w", n.Subnet6, err)
		}
	}
	if n.BinDir, err = binDir(opts.BinDir); err != nil {
		return nil, err
	}
	n.CNIPath = cniPath(opts.CNIPath, n.BinDir)
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()
	if err := n.makeDirs(); err != nil {
		return nil, err
	}
	if err := n.makeNetNS(); err != nil {
		return nil, err
	}
	flannel := false
	if opts.Conflist != nil {
		n.conflist, flannel, err = n.localizeConflist(opts.Conflist)
	} else {
		n.conflist, err = n.buildConflist()
	}
	if err != nil {
		return nil, err
	}
	if flannel {
		env, err := n.defaultSubnetEnv()
		if err != nil {
			return nil, err
		}
		if err := n.WriteSubnetEnv(env); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(n.tmp, "10-policy.conflist"), n.conflist, 0o644); err != nil {
		return nil, err
	}
	return n, nil
}

func withDefaults(o Options) Options {
	if o.Family == "" {
		o.Family = IPv4
		if o.Subnet6 != "" {
			o.Family = DualStack
		}
	}
	switch {
	case !o.Family.Has4():
		o.Subnet = ""
	case o.Subnet == "":
		o.Subnet = DefaultSubnet
	}
	switch {
	case !o.Family.Has6():
		o.Subnet6 = ""
	case o.Subnet6 == "":
		o.Subnet6 = DefaultSubnet6
	}
	if o.Bridge == "" {
		o.Bridge = DefaultBridge
	}
	if o.CNIVersion == "" {
		o.CNIVersion = DefaultCNIVersion
	}
	if o.Network == "" {
		o.Network = DefaultNetwork
	}
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = DefaultClusterCIDR
	}
	if o.ClusterCIDR6 == "" {
		o.ClusterCIDR6 = DefaultClusterCIDR6
	}
	return o
}

func (n *Node) makeDirs() error {
	tmp, err := os.MkdirTemp("", n.NetNS+"-")
	if err != nil {
		return err
	}
	n.tmp = tmp
	if err := writeOwner(tmp); err != nil {
		return err
	}
	n.DataDir = filepath.Join(tmp, "netpol")
	n.IPAMDir = filepath.Join(tmp, "ipam")
	n.CacheDir = filepath.Join(tmp, "cnicache")
	n.SubnetEnv = filepath.Join(tmp, "subnet.env")
	for _, d := range []string{n.DataDir, n.IPAMDir, n.CacheDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// makeNetNS creates the node namespace with lo up and forwarding on.
// Equivalent to: ip netns add NS; ip -n NS link set lo up;
// ip netns exec NS sysctl -w net.ipv4.ip_forward=1 (and IPv6 forwarding,
// and no IPv6 DAD).
func (n *Node) makeNetNS() error {
	if err := createNetNS(n.NetNS); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	for _, s := range []string{
		"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		// No duplicate address detection on the node's links (cni0, veths):
		// a tentative link-local address delays IPv6 neighbour discovery by
		// seconds, which would make the first probes flaky.
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
	} {
		if _, err := n.Exec(ctx, "sysctl", "-q", "-w", s); err != nil {
			return err
		}
	}
	return nil
}

// Close stops agents and servers and deletes every namespace and temporary
// directory of the node. It is safe to call twice.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	agents, servers, netnses := n.agents, n.servers, n.netnses
	n.mu.Unlock()

	var errs []error
	for _, a := range agents {
		if err := a.Stop(); err != nil && !errors.Is(err, errAgentStopped) {
			errs = append(errs, fmt.Errorf("agent pid %d: %w", a.PID, err))
		}
	}
	// Sockets hold a reference to their namespace: close them first.
	for _, s := range servers {
		s.Close()
	}
	for i := len(netnses) - 1; i >= 0; i-- {
		errs = append(errs, deleteNetNS(netnses[i]))
	}
	if n.NetNS != "" {
		errs = append(errs, deleteNetNS(n.NetNS))
	}
	if n.tmp != "" {
		errs = append(errs, os.RemoveAll(n.tmp))
	}
	return errors.Join(errs...)
}

// Conflist returns the network configuration list the node's pods use.
// It is also written to <tmp>/10-policy.conflist.
func (n *Node) Conflist() []byte { return append([]byte(nil), n.conflist...) }

// Exec runs a command inside the node namespace and returns its stdout.
// Equivalent to: ip netns exec NS name args...
func (n *Node) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	return execIn(ctx, n.NetNS, name, args...)
}

// IPTablesSave returns `iptables-save` of the node namespace.
func (n *Node) IPTablesSave(ctx context.Context) (string, error) {
	out, err := n.Exec(ctx, "iptables-save")
	return string(out), err
}

// IP6TablesSave returns `ip6tables-save` of the node namespace.
func (n *Node) IP6TablesSave(ctx context.Context) (string, error) {
	out, err := n.Exec(ctx, "ip6tables-save")
	return string(out), err
}

// IPSetList returns `ipset list` of the node namespace.
func (n *Node) IPSetList(ctx context.Context) (string, error) {
	out, err := n.Exec(ctx, "ipset", "list")
	return string(out), err
}

// Dump returns addresses, routes, iptables and ipsets of the node, for
// failure logs. Errors are rendered inline.
func (n *Node) Dump() string {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var b strings.Builder
	for _, c := range [][]string{
		{"ip", "-br", "addr"}, {"ip", "route"}, {"ip", "-6", "route"},
		{"iptables-save"}, {"ip6tables-save"}, {"ipset", "list"},
	} {
		out, err := n.Exec(ctx, c[0], c[1:]...)
		fmt.Fprintf(&b, "### %s\n%s", strings.Join(c, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(error: %v)\n", err)
		}
	}
	n.mu.Lock()
	agents := n.agents
	n.mu.Unlock()
	for _, a := range agents {
		fmt.Fprintf(&b, "### netpol-agent pid %d output\n%s\n", a.PID, a.Output())
	}
	return b.String()
}

// nextName returns a unique namespace name like np-pod-<suffix>-3 and
// registers it for deletion on Close.
func (n *Node) nextName(kind string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", errors.New("node is closed")
	}
	n.seq++
	name := fmt.Sprintf("np-%s-%s-%d", kind, n.suffix, n.seq)
	n.netnses = append(n.netnses, name)
	return name, nil
}

// track registers a server for closing with the node. A server started
// after Close is closed at once.
func (n *Node) track(s *Server) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		s.Close()
		return
	}
	n.servers = append(n.servers, s)
}

func randomHex(nbytes int) (string, error) {
	b := make([]byte, nbytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random suffix: %w", err)
	}
	return hex.EncodeToString(b), nil
}
