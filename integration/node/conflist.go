package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// DefaultClusterCIDR is the cluster's pod network (FLANNEL_NETWORK): every
// node's pod subnet is a /24 inside it.
const DefaultClusterCIDR = "10.244.0.0/16"

// SubnetEnv is what flanneld writes to /run/flannel/subnet.env and the
// flannel CNI plugin reads on ADD.
type SubnetEnv struct {
	Network string // FLANNEL_NETWORK, the cluster CIDR ("" on an IPv6-only node)
	Subnet  string // FLANNEL_SUBNET, the node's gateway address/prefix, e.g. 10.244.2.1/24
	// IPv6Network and IPv6Subnet are FLANNEL_IPV6_NETWORK and
	// FLANNEL_IPV6_SUBNET (e.g. fd00:10:244:2::1/64), set on a node with
	// IPv6 pods; the flannel plugin then gives host-local an IPv6 range too.
	IPv6Network string
	IPv6Subnet  string
	MTU         int // FLANNEL_MTU
	// IPMasq is FLANNEL_IPMASQ: true when flanneld itself masquerades
	// traffic leaving the cluster CIDR; the flannel CNI plugin then gives
	// the bridge ipMasq=false, so pod-to-pod traffic across nodes keeps
	// the pod's source address (what NetworkPolicy needs).
	IPMasq bool
}

// String renders the file as flanneld does (each family's lines only when
// the node has that family).
func (e SubnetEnv) String() string {
	var b strings.Builder
	if e.Network != "" || e.Subnet != "" {
		fmt.Fprintf(&b, "FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\n", e.Network, e.Subnet)
	}
	if e.IPv6Network != "" || e.IPv6Subnet != "" {
		fmt.Fprintf(&b, "FLANNEL_IPV6_NETWORK=%s\nFLANNEL_IPV6_SUBNET=%s\n", e.IPv6Network, e.IPv6Subnet)
	}
	fmt.Fprintf(&b, "FLANNEL_MTU=%d\nFLANNEL_IPMASQ=%t\n", e.MTU, e.IPMasq)
	return b.String()
}

// WriteSubnetEnv (re)writes the node's subnet.env (n.SubnetEnv), the file
// the flannel plugin of the node's chain reads. Nodes whose chain holds the
// flannel plugin get one at Create: the cluster CIDR, the node's subnet,
// MTU 1500 and IPMasq true.
func (n *Node) WriteSubnetEnv(e SubnetEnv) error {
	tmp := n.SubnetEnv + ".tmp"
	if err := os.WriteFile(tmp, []byte(e.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, n.SubnetEnv)
}

// defaultSubnetEnv is the subnet.env flanneld (--ip-masq, host-gw) would
// write for this node, with the families the node has.
func (n *Node) defaultSubnetEnv() (SubnetEnv, error) {
	e := SubnetEnv{MTU: 1500, IPMasq: true}
	gateway := func(subnet, gw string) (string, error) {
		_, ipnet, err := net.ParseCIDR(subnet)
		if err != nil {
			return "", err
		}
		ones, _ := ipnet.Mask.Size()
		return fmt.Sprintf("%s/%d", gw, ones), nil
	}
	var err error
	if n.Subnet != "" {
		e.Network = n.opts.ClusterCIDR
		if e.Subnet, err = gateway(n.Subnet, n.Gateway); err != nil {
			return SubnetEnv{}, err
		}
	}
	if n.Subnet6 != "" {
		e.IPv6Network = n.opts.ClusterCIDR6
		if e.IPv6Subnet, err = gateway(n.Subnet6, n.Gateway6); err != nil {
			return SubnetEnv{}, err
		}
	}
	return e, nil
}

// RepoFile reads a file at the root of the netpol module (e.g.
// "10-policy-flannel.conflist"), so tests run the conflists we ship. The
// root is found above the working directory, else above this source file
// (a test of another module using this package).
func RepoFile(name string) ([]byte, error) {
	root, err := moduleRoot()
	if err != nil {
		_, file, _, ok := runtime.Caller(0)
		if !ok || !filepath.IsAbs(file) {
			return nil, err
		}
		root = filepath.Join(filepath.Dir(file), "..", "..")
	}
	return os.ReadFile(filepath.Join(root, name))
}

// hostPathPrefixes are host-wide state locations a test node must never
// use; localizeConflist refuses a conflist still naming one of them.
var hostPathPrefixes = []string{"/var/lib/cni", "/var/lib/netpol", "/run/flannel", "/etc/cni", "/opt/cni"}

// localizeConflist turns a conflist written for a real node (Options.
// Conflist, e.g. the repo's 10-policy*.conflist) into this node's: every
// path it keeps state under is moved into the node's temp dir, and the IPAM
// ranges become the node's subnet.
//
//   - netpol: Options.NetpolConf merged in; dataDir = n.DataDir; logFile
//     dropped (defaults into dataDir).
//   - bridge: Options.BridgeConf merged in (a Cluster sets ipMasq false);
//     ipam.dataDir = n.IPAMDir, ipam.ranges = [[Subnet]] (plus [[Subnet6]]);
//     n.Bridge follows its "bridge".
//   - flannel: subnetFile = n.SubnetEnv, dataDir = <tmp>/flannel,
//     ipam.dataDir = n.IPAMDir (flannel fills ranges and routes from
//     subnet.env); n.Bridge follows delegate.bridge.
//
// Plugins of other types are kept as they are. The result must not name any
// host-wide state path (hostPathPrefixes).
func (n *Node) localizeConflist(in []byte) ([]byte, bool, error) {
	var list map[string]any
	if err := json.Unmarshal(in, &list); err != nil {
		return nil, false, fmt.Errorf("conflist: %w", err)
	}
	plugins, ok := list["plugins"].([]any)
	if !ok || len(plugins) == 0 {
		return nil, false, errors.New("conflist: no plugins")
	}
	flannel := false
	n.Bridge = DefaultBridge
	for i, p := range plugins {
		pc, ok := p.(map[string]any)
		if !ok {
			return nil, false, fmt.Errorf("conflist: plugin %d is not an object", i)
		}
		switch pc["type"] {
		case "netpol":
			maps.Copy(pc, n.opts.NetpolConf)
			pc["dataDir"] = n.DataDir
			delete(pc, "logFile")
		case "bridge":
			maps.Copy(pc, n.opts.BridgeConf)
			ipam := objectField(pc, "ipam")
			ipam["dataDir"] = n.IPAMDir
			ranges, err := n.ranges()
			if err != nil {
				return nil, false, err
			}
			ipam["ranges"] = ranges
			if b, ok := pc["bridge"].(string); ok && b != "" {
				n.Bridge = b
			}
		case "flannel":
			flannel = true
			pc["subnetFile"] = n.SubnetEnv
			pc["dataDir"] = filepath.Join(n.tmp, "flannel")
			objectField(pc, "ipam")["dataDir"] = n.IPAMDir
			if b, ok := objectField(pc, "delegate")["bridge"].(string); ok && b != "" {
				n.Bridge = b
			}
		}
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, false, err
	}
	if p := hostPath(list); p != "" {
		return nil, false, fmt.Errorf("conflist: %q is host-wide state; a test node must not use it", p)
	}
	return out, flannel, nil
}

// objectField returns m[key] as an object, creating it when missing.
func objectField(m map[string]any, key string) map[string]any {
	o, ok := m[key].(map[string]any)
	if !ok {
		o = map[string]any{}
		m[key] = o
	}
	return o
}

// hostPath returns the first string in v that names host-wide state.
func hostPath(v any) string {
	switch x := v.(type) {
	case string:
		for _, p := range hostPathPrefixes {
			if x == p || strings.HasPrefix(x, p+"/") {
				return x
			}
		}
	case map[string]any:
		for _, e := range x {
			if p := hostPath(e); p != "" {
				return p
			}
		}
	case []any:
		for _, e := range x {
			if p := hostPath(e); p != "" {
				return p
			}
		}
	}
	return ""
}

// ranges is host-local's "ranges" for the node: an IPv4 range set of
// Subnet when set, and an IPv6 one of Subnet6 when set.
func (n *Node) ranges() ([]any, error) {
	var out []any
	if n.Subnet != "" {
		out = append(out, []any{map[string]any{"subnet": n.Subnet}})
	}
	if n.Subnet6 != "" {
		if ip, _, err := net.ParseCIDR(n.Subnet6); err != nil || ip.To4() != nil {
			return nil, fmt.Errorf("subnet6 %q: not an IPv6 CIDR", n.Subnet6)
		}
		out = append(out, []any{map[string]any{"subnet": n.Subnet6}})
	}
	return out, nil
}

// podConflist returns the conflist of a pod on another network of the node
// (PodOptions.Bridge and Subnet): the node's chain with the bridge plugin's
// bridge and host-local range replaced.
func (n *Node) podConflist(o PodOptions) ([]byte, error) {
	if o.Bridge == "" || o.Subnet == "" {
		return nil, errors.New("a pod network needs both Bridge and Subnet")
	}
	if ip, _, err := net.ParseCIDR(o.Subnet); err != nil || ip.To4() == nil {
		return nil, fmt.Errorf("pod subnet %q: not an IPv4 CIDR", o.Subnet)
	}
	var list map[string]any
	if err := json.Unmarshal(n.conflist, &list); err != nil {
		return nil, err
	}
	plugins, _ := list["plugins"].([]any)
	found := false
	for _, p := range plugins {
		if pc, ok := p.(map[string]any); ok && pc["type"] == "bridge" {
			pc["bridge"] = o.Bridge
			objectField(pc, "ipam")["ranges"] = []any{[]any{map[string]any{"subnet": o.Subnet}}}
			found = true
		}
	}
	if !found {
		return nil, errors.New("a pod network needs a chain that starts with the bridge plugin")
	}
	return json.MarshalIndent(list, "", "  ")
}
