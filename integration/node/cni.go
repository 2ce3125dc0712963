package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
)

// Pod is a network namespace attached to the node through the CNI chain.
type Pod struct {
	Namespace   string
	Name        string
	ContainerID string
	NetNS       string // netns name
	NetNSPath   string
	IP          string   // first IPv4 address of the result
	IP6         string   // first IPv6 address of the result, if any
	IPs         []string // all addresses of the result
	HostVeth    string   // node side of the pod's veth
	Bridge      string   // the node bridge the pod is attached to
	Result      *types100.Result

	node     *Node
	conflist []byte // the pod's own network (PodOptions.Bridge), or nil
	mu       sync.Mutex
	servers  []*Server
}

// PodArgs are the arguments of one raw CNI invocation.
type PodArgs struct {
	Namespace   string
	Name        string
	ContainerID string
	NetNSPath   string
	IfName      string // default eth0
	// ExtraArgs are appended to CNI_ARGS after the K8S_* keys.
	ExtraArgs [][2]string
	// CapabilityArgs become runtimeConfig (e.g. "portMappings").
	CapabilityArgs map[string]any
	// Conflist, when set, is used instead of the node's conflist (a pod
	// on another network of the node, see PodOptions.Bridge).
	Conflist []byte
}

// Cache says whether a DEL may use libcni's cached result and config.
type Cache int

const (
	// UseCache passes the cached prevResult, as a runtime normally does.
	UseCache Cache = iota
	// NoCache runs DEL through a fresh libcni with an empty cache dir, so
	// the plugins get no prevResult.
	NoCache
)

// Label is "namespace/name".
func (p *Pod) Label() string { return p.Namespace + "/" + p.Name }

// Addr is the pod's first IPv4 address, or its IPv6 one when it has no
// IPv4 address (see AddrIn for a chosen family).
func (p *Pod) Addr() string {
	if p.IP == "" {
		return p.IP6
	}
	return p.IP
}

// Endpoint is the pod's namespace; the source address is the kernel's choice.
func (p *Pod) Endpoint() (netnsPath, sourceIP string) { return p.NetNSPath, "" }

// Args returns the CNI arguments the pod was added with.
func (p *Pod) Args() PodArgs {
	return PodArgs{Namespace: p.Namespace, Name: p.Name, ContainerID: p.ContainerID,
		NetNSPath: p.NetNSPath, IfName: "eth0", Conflist: p.conflist}
}

// Attachment identifies the pod for GC's list of valid attachments.
func (p *Pod) Attachment() types.GCAttachment {
	return types.GCAttachment{ContainerID: p.ContainerID, IfName: "eth0"}
}

// Exec runs a command inside the pod namespace and returns its stdout.
func (p *Pod) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	return execIn(ctx, p.NetNS, name, args...)
}

// Serve starts a TCP echo listener and a UDP echo server on every port, on
// all addresses of the pod; they stop on DelPod or the node's Close.
func (p *Pod) Serve(ports ...int) error {
	s, err := Serve(p.NetNSPath, "", ports...)
	if err != nil {
		return fmt.Errorf("pod %s: %w", p.Label(), err)
	}
	p.node.track(s)
	p.mu.Lock()
	p.servers = append(p.servers, s)
	p.mu.Unlock()
	return nil
}

// NewPodNetNS creates an empty pod namespace (lo up) for raw CNI calls
// with AddPodArgs; it is deleted on Close.
func (n *Node) NewPodNetNS() (name, path string, err error) {
	name, err = n.nextName("pod")
	if err != nil {
		return "", "", err
	}
	if err := createNetNS(name); err != nil {
		return "", "", errors.Join(err, deleteNetNS(name))
	}
	return name, netnsPath(name), nil
}

// NewContainerID returns a fresh 64-hex-digit container ID.
func NewContainerID() (string, error) { return randomHex(32) }

// PodOptions adjusts the CNI ADD of one pod.
type PodOptions struct {
	// IP pins the pod's IPv4 address: CNI_ARGS IP=<ip>, which host-local
	// honours when the address lies in its range (the node's subnet, or
	// Subnet).
	IP string
	// Bridge and Subnet attach the pod to another network of the node: the
	// node's chain with the bridge plugin on bridge Bridge and host-local
	// on Subnet (gateway .1 on that bridge). With IP, this is how a pod
	// keeps its address when it moves to another node: every node can
	// hold a range outside its own subnet, routed per address
	// (Cluster.RoutePod). The pod's DEL and CHECK use the same network.
	// (One bridge holds one IPv4 gateway: the bridge plugin refuses a
	// second subnet on the node's own bridge.)
	Bridge, Subnet string
	// CapabilityArgs become runtimeConfig (e.g. "portMappings").
	CapabilityArgs map[string]any
}

// AddPod creates a pod namespace and runs CNI ADD of the node's conflist
// for it, then waits until the bridge and both veth ends are up.
func (n *Node) AddPod(namespace, name string) (*Pod, error) {
	return n.AddPodOpts(namespace, name, PodOptions{})
}

// Node is the node the pod was added on.
func (p *Pod) Node() *Node { return p.node }

// AddPodOpts is AddPod with per-pod options.
func (n *Node) AddPodOpts(namespace, name string, o PodOptions) (_ *Pod, err error) {
	nsName, path, err := n.NewPodNetNS()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, deleteNetNS(nsName))
		}
	}()
	cid, err := NewContainerID()
	if err != nil {
		return nil, err
	}
	p := &Pod{Namespace: namespace, Name: name, ContainerID: cid, NetNS: nsName, NetNSPath: path, node: n, Bridge: n.Bridge}
	if o.Bridge != "" || o.Subnet != "" {
		if p.conflist, err = n.podConflist(o); err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.Label(), err)
		}
		p.Bridge = o.Bridge
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	args := p.Args()
	if o.IP != "" {
		if ip := net.ParseIP(o.IP); ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("pod %s: pinned IP %q is not an IPv4 address", p.Label(), o.IP)
		}
		args.ExtraArgs = append(args.ExtraArgs, [2]string{"IP", o.IP})
	}
	args.CapabilityArgs = o.CapabilityArgs
	res, err := n.AddPodArgs(ctx, args)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", p.Label(), err)
	}
	if p.Result, err = types100.NewResultFromResult(res); err != nil {
		return nil, fmt.Errorf("pod %s: result: %w", p.Label(), err)
	}
	for _, ipc := range p.Result.IPs {
		p.IPs = append(p.IPs, ipc.Address.IP.String())
		if ipc.Address.IP.To4() != nil && p.IP == "" {
			p.IP = ipc.Address.IP.String()
		} else if ipc.Address.IP.To4() == nil && p.IP6 == "" {
			p.IP6 = ipc.Address.IP.String()
		}
	}
	for _, iface := range p.Result.Interfaces {
		if iface.Sandbox == "" && iface.Name != p.Bridge {
			p.HostVeth = iface.Name
		}
	}
	if p.IP == "" && p.IP6 == "" {
		return nil, fmt.Errorf("pod %s: CNI result has no IP", p.Label())
	}
	if p.HostVeth == "" {
		return nil, fmt.Errorf("pod %s: CNI result has no host veth", p.Label())
	}
	if err := waitLinks(ctx, n.NetNS, p.Bridge, p.HostVeth); err != nil {
		return nil, err
	}
	if err := waitLinks(ctx, nsName, "eth0"); err != nil {
		return nil, err
	}
	return p, nil
}

// DelPod runs CNI DEL (with the cache) for the pod, stops its servers and
// deletes its namespace, as a runtime tears down a sandbox.
func (n *Node) DelPod(p *Pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	err := n.DelPodArgs(ctx, p.Args(), UseCache)
	p.mu.Lock()
	for _, s := range p.servers {
		s.Close()
	}
	p.servers = nil
	p.mu.Unlock()
	return errors.Join(err, deleteNetNS(p.NetNS))
}

// CheckPod runs CNI CHECK for the pod.
func (n *Node) CheckPod(p *Pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return n.CheckPodArgs(ctx, p.Args())
}

// GC runs CNI GC: libcni DELs every cached attachment not in valid, then
// (cniVersion >= 1.1.0) sends GC to every plugin.
func (n *Node) GC(valid []types.GCAttachment) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	list, err := n.networkList()
	if err != nil {
		return err
	}
	return n.inNode(func() error {
		return n.cni(n.CacheDir).GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid})
	})
}

// Status runs CNI STATUS (cniVersion >= 1.1.0).
func (n *Node) Status() error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	list, err := n.networkList()
	if err != nil {
		return err
	}
	return n.inNode(func() error { return n.cni(n.CacheDir).GetStatusNetworkList(ctx, list) })
}

// AddPodArgs runs CNI ADD with raw arguments; calling it twice for one
// container is allowed.
func (n *Node) AddPodArgs(ctx context.Context, a PodArgs) (res types.Result, err error) {
	list, err := n.networkListFor(a)
	if err != nil {
		return nil, err
	}
	err = n.inNode(func() error {
		res, err = n.cni(n.CacheDir).AddNetworkList(ctx, list, runtimeConf(a))
		return err
	})
	return res, err
}

// CheckPodArgs runs CNI CHECK with raw arguments.
func (n *Node) CheckPodArgs(ctx context.Context, a PodArgs) error {
	list, err := n.networkListFor(a)
	if err != nil {
		return err
	}
	return n.inNode(func() error { return n.cni(n.CacheDir).CheckNetworkList(ctx, list, runtimeConf(a)) })
}

// DelPodArgs runs CNI DEL with raw arguments, with or without libcni's
// cached prevResult. It does not delete the pod namespace.
func (n *Node) DelPodArgs(ctx context.Context, a PodArgs, c Cache) error {
	list, err := n.networkListFor(a)
	if err != nil {
		return err
	}
	cacheDir := n.CacheDir
	if c == NoCache {
		if cacheDir, err = os.MkdirTemp(n.tmp, "emptycache-"); err != nil {
			return err
		}
		defer os.RemoveAll(cacheDir)
	}
	return n.inNode(func() error { return n.cni(cacheDir).DelNetworkList(ctx, list, runtimeConf(a)) })
}

// inNode runs f on an OS thread locked into the node namespace, so the
// plugins libcni executes inherit it and configure the node side.
func (n *Node) inNode(f func() error) error {
	return ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error { return f() })
}

func (n *Node) cni(cacheDir string) *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(n.CNIPath, cacheDir, nil)
}

func (n *Node) networkList() (*libcni.NetworkConfigList, error) {
	return libcni.NetworkConfFromBytes(n.conflist)
}

// networkListFor is the conflist of one call: a.Conflist or the node's.
func (n *Node) networkListFor(a PodArgs) (*libcni.NetworkConfigList, error) {
	if a.Conflist != nil {
		return libcni.NetworkConfFromBytes(a.Conflist)
	}
	return n.networkList()
}

func runtimeConf(a PodArgs) *libcni.RuntimeConf {
	ifName := a.IfName
	if ifName == "" {
		ifName = "eth0"
	}
	args := [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", a.Namespace},
		{"K8S_POD_NAME", a.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", a.ContainerID},
	}
	return &libcni.RuntimeConf{
		ContainerID:    a.ContainerID,
		NetNS:          a.NetNSPath,
		IfName:         ifName,
		Args:           append(args, a.ExtraArgs...),
		CapabilityArgs: a.CapabilityArgs,
	}
}

// buildConflist renders the node's chain: bridge (host-local IPAM), then
// netpol unless BridgeOnly, then ExtraPlugins.
func (n *Node) buildConflist() ([]byte, error) {
	ranges, err := n.ranges()
	if err != nil {
		return nil, err
	}
	var routes []any
	if n.Subnet != "" {
		routes = append(routes, map[string]any{"dst": "0.0.0.0/0"})
	}
	if n.Subnet6 != "" {
		routes = append(routes, map[string]any{"dst": "::/0"})
	}
	bridge := map[string]any{
		"type":        "bridge",
		"bridge":      n.Bridge,
		"isGateway":   true,
		"ipMasq":      true,
		"hairpinMode": true,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": n.IPAMDir,
			"ranges":  ranges,
			"routes":  routes,
		},
	}
	maps.Copy(bridge, n.opts.BridgeConf)
	plugins := []any{bridge}
	if !n.opts.BridgeOnly {
		netpol := map[string]any{"type": "netpol", "dataDir": n.DataDir}
		maps.Copy(netpol, n.opts.NetpolConf)
		plugins = append(plugins, netpol)
	}
	for _, p := range n.opts.ExtraPlugins {
		plugins = append(plugins, p)
	}
	return json.MarshalIndent(map[string]any{
		"cniVersion": n.opts.CNIVersion,
		"name":       n.opts.Network,
		"plugins":    plugins,
	}, "", "  ")
}
