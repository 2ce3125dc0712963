package node

import (
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// FlushConntrack forgets every flow the node namespace's conntrack tracks,
// IPv4 and IPv6 (the kernel flushes one family per request). Tests that
// judge new connections call it before probing: netpol lets established
// flows through before any policy chain, so a UDP probe whose ephemeral
// source port happens to repeat a flow an earlier probe was allowed would
// pass as that flow's traffic while the policy now denies it. Equivalent to
// `ip netns exec NODE conntrack -F` for each family.
func (n *Node) FlushConntrack() error {
	return ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error {
		for _, fam := range []netlink.InetFamily{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, fam, matchAllFlows{}); err != nil {
				return fmt.Errorf("node %s: flush conntrack (family %d): %w", n.Name, fam, err)
			}
		}
		return nil
	})
}

// matchAllFlows is a conntrack filter that matches every flow.
type matchAllFlows struct{}

func (matchAllFlows) MatchConntrackFlow(*netlink.ConntrackFlow) bool { return true }
