package node

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// maxOutsides is how many outside hosts fit in the /30s of 192.0.2.0/24.
const maxOutsides = 64

// Outside is a host beyond the node (another network, the internet, a
// pod of another node): a namespace joined to the node by a veth pair.
// The node routes the outside's address ranges to it; the outside routes
// the pod subnet (and everything else) back through the node.
type Outside struct {
	Name      string
	NetNS     string
	NetNSPath string
	Addrs     []string // the outside's addresses, without prefix
	Prefixes  []string // the address ranges the node routes to it
	NodeVeth  string   // node side of the veth pair
	NodeIP    string   // node end of the point-to-point link (192.0.2.0/24)
	PeerIP    string   // outside end of the point-to-point link

	node *Node
}

// AddOutside creates an outside host holding addrs (CIDR form, e.g.
// 172.17.0.5/16; IPv4 or IPv6). The point-to-point link uses 192.0.2.4k+1
// (node) and 192.0.2.4k+2 (outside), and 2001:db8:ffff::4k+1/+2 for IPv6.
//
// Equivalent to:
//
//	ip netns add OUT; ip -n NODE link add np-outK type veth peer name eth0 netns OUT
//	ip -n NODE addr add 192.0.2.1 peer 192.0.2.2 dev np-outK
//	ip -n OUT addr add 192.0.2.2 peer 192.0.2.1 dev eth0; ip -n OUT addr add ADDR dev eth0
//	ip -n NODE route replace RANGE via 192.0.2.2
//	ip -n OUT route add SUBNET via 192.0.2.1; ip -n OUT route add default via 192.0.2.1
func (n *Node) AddOutside(name string, addrs []string) (_ *Outside, err error) {
	if len(addrs) == 0 {
		return nil, errors.New("outside: no addresses")
	}
	o := &Outside{Name: name, node: n}
	for _, a := range addrs {
		ip, ipnet, err := net.ParseCIDR(a)
		if err != nil {
			return nil, fmt.Errorf("outside %s: address %q: %w", name, a, err)
		}
		o.Addrs = append(o.Addrs, ip.String())
		o.Prefixes = append(o.Prefixes, ipnet.String())
	}
	n.mu.Lock()
	k := n.outsideSeq
	n.outsideSeq++
	n.mu.Unlock()
	if k >= maxOutsides {
		return nil, fmt.Errorf("outside %s: at most %d outside hosts per node", name, maxOutsides)
	}
	if o.NetNS, err = n.nextName("out"); err != nil {
		return nil, err
	}
	o.NetNSPath = netnsPath(o.NetNS)
	defer func() {
		if err != nil {
			err = errors.Join(err, deleteNetNS(o.NetNS))
		}
	}()
	if err := createNetNS(o.NetNS); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	// No DAD, as on the node: the link must be usable at once.
	if _, err := o.Exec(ctx, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0"); err != nil {
		return nil, err
	}
	o.NodeVeth = fmt.Sprintf("np-out%d", k)
	o.NodeIP = fmt.Sprintf("192.0.2.%d", 4*k+1)
	o.PeerIP = fmt.Sprintf("192.0.2.%d", 4*k+2)
	if err := o.link(ctx, k, addrs); err != nil {
		return nil, fmt.Errorf("outside %s: %w", name, err)
	}
	if err := waitLinks(ctx, n.NetNS, o.NodeVeth); err != nil {
		return nil, err
	}
	if err := waitLinks(ctx, o.NetNS, "eth0"); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.outsides = append(n.outsides, o)
	n.mu.Unlock()
	return o, nil
}

// link builds the veth pair, addresses and routes.
func (o *Outside) link(ctx context.Context, k int, addrs []string) error {
	node, out := o.node.NetNS, o.NetNS
	node6 := fmt.Sprintf("2001:db8:ffff::%x", 4*k+1)
	peer6 := fmt.Sprintf("2001:db8:ffff::%x", 4*k+2)
	cmds := [][]string{
		{node, "link", "add", o.NodeVeth, "type", "veth", "peer", "name", "eth0", "netns", out},
		{node, "addr", "add", o.NodeIP, "peer", o.PeerIP, "dev", o.NodeVeth},
		{node, "-6", "addr", "add", node6, "peer", peer6, "dev", o.NodeVeth, "nodad"},
		{node, "link", "set", o.NodeVeth, "up"},
		{out, "addr", "add", o.PeerIP, "peer", o.NodeIP, "dev", "eth0"},
		{out, "-6", "addr", "add", peer6, "peer", node6, "dev", "eth0", "nodad"},
		{out, "link", "set", "eth0", "up"},
	}
	for i, a := range addrs {
		args := []string{out, "addr", "add", a, "dev", "eth0"}
		route := []string{node, "route", "replace", o.Prefixes[i], "via", o.PeerIP, "dev", o.NodeVeth}
		if net.ParseIP(o.Addrs[i]).To4() == nil {
			args = append(args, "nodad")
			route = []string{node, "-6", "route", "replace", o.Prefixes[i], "via", peer6, "dev", o.NodeVeth, "onlink"}
		}
		cmds = append(cmds, args, route)
	}
	if o.node.Subnet != "" {
		cmds = append(cmds, []string{out, "route", "add", o.node.Subnet, "via", o.NodeIP, "dev", "eth0"})
	}
	cmds = append(cmds,
		[]string{out, "route", "add", "default", "via", o.NodeIP, "dev", "eth0"},
		[]string{out, "-6", "route", "add", "default", "via", node6, "dev", "eth0", "onlink"},
	)
	if o.node.Subnet6 != "" {
		cmds = append(cmds, []string{out, "-6", "route", "add", o.node.Subnet6, "via", node6, "dev", "eth0", "onlink"})
	}
	for _, c := range cmds {
		if _, err := ipIn(ctx, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// Label is the outside's name.
func (o *Outside) Label() string { return o.Name }

// Addr is the outside's first address.
func (o *Outside) Addr() string { return o.Addrs[0] }

// Endpoint sends from the outside's first address.
func (o *Outside) Endpoint() (string, string) { return o.NetNSPath, o.Addrs[0] }

// At returns the outside host as seen at one of its addresses: probes from
// it use ip as their source, probes to it go to ip.
func (o *Outside) At(ip string) Source {
	return Source{Name: o.Name + "@" + ip, NetNSPath: o.NetNSPath, IP: ip}
}

// Serve starts echo servers on every port of every address of the outside
// (bound per address, so UDP replies come from the address asked).
func (o *Outside) Serve(ports ...int) error {
	for _, a := range o.Addrs {
		if err := o.ServeOn(a, ports...); err != nil {
			return err
		}
	}
	return nil
}

// ServeOn starts echo servers on one address of the outside.
func (o *Outside) ServeOn(ip string, ports ...int) error {
	s, err := Serve(o.NetNSPath, ip, ports...)
	if err != nil {
		return fmt.Errorf("outside %s: %w", o.Name, err)
	}
	o.node.track(s)
	return nil
}

// Exec runs a command inside the outside namespace and returns its stdout.
func (o *Outside) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	return execIn(ctx, o.NetNS, name, args...)
}
