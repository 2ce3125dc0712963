package node

import (
	"fmt"
	"net"
)

// Family is which address families a node gives its pods: host-local gets
// one range per family, so a dual-stack pod is one pod with two addresses.
type Family string

// The pod address families.
const (
	IPv4      Family = "ipv4" // host-local with Subnet only
	IPv6      Family = "ipv6" // host-local with Subnet6 only
	DualStack Family = "dual" // both ranges: every pod has one address of each family
)

// Defaults of the IPv6 side, beside DefaultSubnet and DefaultClusterCIDR.
const (
	DefaultSubnet6      = "fd00:10:244:1::/64"
	DefaultClusterCIDR6 = "fd00:10:244::/48"
	// UnderlayPrefix6 is the IPv6 underlay (documentation prefix): node
	// i is UnderlayPrefix6::i/64.
	UnderlayPrefix6 = "2001:db8:100:"
)

// ParseFamily reads "ipv4", "ipv6" or "dual".
func ParseFamily(s string) (Family, error) {
	switch f := Family(s); f {
	case IPv4, IPv6, DualStack:
		return f, nil
	}
	return "", fmt.Errorf("address family %q: want ipv4, ipv6 or dual", s)
}

// Has4 reports whether pods of f have an IPv4 address.
func (f Family) Has4() bool { return f != IPv6 }

// Has6 reports whether pods of f have an IPv6 address.
func (f Family) Has6() bool { return f == IPv6 || f == DualStack }

// Single lists the single families of f, IPv4 first: what a probe of
// every family of a pod connects over.
func (f Family) Single() []Family {
	var out []Family
	if f.Has4() {
		out = append(out, IPv4)
	}
	if f.Has6() {
		out = append(out, IPv6)
	}
	return out
}

// FamilyHost is a Host with one address per family it has.
type FamilyHost interface {
	Host
	// AddrIn is the host's address of family f (IPv4 or IPv6), "" when it
	// has none.
	AddrIn(f Family) string
}

// In returns h as reached over family f only: its Addr is h.AddrIn(f), so
// every probe to it connects over that family. Label is h's.
func In[H FamilyHost](hosts []H, f Family) []Host {
	out := make([]Host, len(hosts))
	for i, h := range hosts {
		out[i] = inFamily{h, f}
	}
	return out
}

type inFamily struct {
	FamilyHost
	f Family
}

func (h inFamily) Addr() string { return h.AddrIn(h.f) }

// AddrIn is the pod's first address of family f.
func (p *Pod) AddrIn(f Family) string {
	if f == IPv6 {
		return p.IP6
	}
	return p.IP
}

// AddrIn is the node's gateway address of family f on its bridge.
func (n *Node) AddrIn(f Family) string {
	if f == IPv6 {
		return n.Gateway6
	}
	return n.Gateway
}

// ClusterSubnet6 is the pod IPv6 subnet of node i (0-based):
// fd00:10:244:<i+1>::/64 (i+1 in hex).
func ClusterSubnet6(i int) string { return fmt.Sprintf("fd00:10:244:%x::/64", i+1) }

// PlacedIP6 is the IPv6 address host-local gives pod i when pods are added
// in index order, round-robin, on fresh nodes of n: ::2+i/n of node
// (i mod n)'s IPv6 subnet.
func PlacedIP6(i, n int) string {
	return fmt.Sprintf("fd00:10:244:%x::%x", i%n+1, 2+i/n)
}

// hostRoute is the /32 or /128 of an address.
func hostRoute(ip string) string {
	if p := net.ParseIP(ip); p != nil && p.To4() == nil {
		return ip + "/128"
	}
	return ip + "/32"
}
