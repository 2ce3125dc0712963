package node

import (
	"net"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestFlushConntrack: a UDP flow of each family, created in the node's
// conntrack table, is gone after FlushConntrack.
func TestFlushConntrack(t *testing.T) {
	t.Parallel()
	n := bridgeNode(t, Options{Subnet: "10.244.3.0/24", Subnet6: "fd00:10:244:3::/64"})
	flows := map[netlink.InetFamily][2]string{
		netlink.FAMILY_V4: {"10.244.3.2", "10.244.3.3"},
		netlink.FAMILY_V6: {"fd00:10:244:3::2", "fd00:10:244:3::3"},
	}
	count := func() map[netlink.InetFamily]int {
		t.Helper()
		got := map[netlink.InetFamily]int{}
		err := ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error {
			for fam := range flows {
				list, err := netlink.ConntrackTableList(netlink.ConntrackTable, fam)
				if err != nil {
					return err
				}
				got[fam] = len(list)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	err := ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error {
		for fam, a := range flows {
			src, dst := net.ParseIP(a[0]), net.ParseIP(a[1])
			flow := &netlink.ConntrackFlow{
				FamilyType: uint8(fam),
				Forward:    netlink.IPTuple{SrcIP: src, DstIP: dst, Protocol: unix.IPPROTO_UDP, SrcPort: 40000, DstPort: 80},
				Reverse:    netlink.IPTuple{SrcIP: dst, DstIP: src, Protocol: unix.IPPROTO_UDP, SrcPort: 80, DstPort: 40000},
				TimeOut:    120,
			}
			if err := netlink.ConntrackCreate(netlink.ConntrackTable, fam, flow); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("create flows: %v", err)
	}
	if got := count(); got[netlink.FAMILY_V4] != 1 || got[netlink.FAMILY_V6] != 1 {
		t.Fatalf("before the flush: flows per family %v, want one each", got)
	}
	if err := n.FlushConntrack(); err != nil {
		t.Fatal(err)
	}
	if got := count(); got[netlink.FAMILY_V4] != 0 || got[netlink.FAMILY_V6] != 0 {
		t.Errorf("after the flush: flows per family %v, want none", got)
	}
}
