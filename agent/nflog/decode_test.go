package nflog

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func ipv4(proto uint8, fragOff uint16, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[6:], fragOff)
	b[9] = proto
	copy(b[12:], []byte{10, 244, 1, 3})
	copy(b[16:], []byte{10, 244, 1, 2})
	return append(b, l4...)
}

func ports(src, dst uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b, src)
	binary.BigEndian.PutUint16(b[2:], dst)
	return b
}

func ipv6(next uint8, ext []byte) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	b[6] = next
	src, dst := netip.MustParseAddr("fd00::3").As16(), netip.MustParseAddr("fd00::2").As16()
	copy(b[8:], src[:])
	copy(b[24:], dst[:])
	return append(b, ext...)
}

func TestDecode(t *testing.T) {
	hop := append([]byte{6, 0, 0, 0, 0, 0, 0, 0}, ports(40000, 6379)...) // hop-by-hop, then TCP
	frag := append([]byte{17, 0, 0, 8, 0, 0, 0, 1}, ports(1, 2)...)      // a later fragment of UDP
	tests := []struct {
		name string
		pkt  []byte
		want Flow
	}{
		{"tcp4", ipv4(6, 0, ports(40000, 6379)), Flow{netip.MustParseAddr("10.244.1.3"), netip.MustParseAddr("10.244.1.2"), "TCP", 40000, 6379}},
		{"udp4 later fragment", ipv4(17, 5, ports(1, 2)), Flow{netip.MustParseAddr("10.244.1.3"), netip.MustParseAddr("10.244.1.2"), "UDP", 0, 0}},
		{"icmp4", ipv4(1, 0, []byte{8, 0, 0, 0}), Flow{netip.MustParseAddr("10.244.1.3"), netip.MustParseAddr("10.244.1.2"), "ICMP", 0, 0}},
		{"sctp6", ipv6(132, ports(5, 7)), Flow{netip.MustParseAddr("fd00::3"), netip.MustParseAddr("fd00::2"), "SCTP", 5, 7}},
		{"tcp6 after hop-by-hop", ipv6(0, hop), Flow{netip.MustParseAddr("fd00::3"), netip.MustParseAddr("fd00::2"), "TCP", 40000, 6379}},
		{"udp6 later fragment", ipv6(44, frag), Flow{netip.MustParseAddr("fd00::3"), netip.MustParseAddr("fd00::2"), "UDP", 0, 0}},
		{"gre4", ipv4(47, 0, nil), Flow{netip.MustParseAddr("10.244.1.3"), netip.MustParseAddr("10.244.1.2"), "47", 0, 0}},
	}
	for _, tt := range tests {
		got, err := Decode(tt.pkt)
		if err != nil || got != tt.want {
			t.Errorf("%s: Decode = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	for _, bad := range [][]byte{nil, {0x45, 0}, {0x60}, {0x20, 1, 2}, append([]byte{0x4f}, make([]byte, 30)...)} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(% x) accepted it", bad)
		}
	}
}

func TestSequenceGapsCountAsLost(t *testing.T) {
	c := &Conn{}
	for _, s := range []uint32{7, 8, 9, 12, 13, 20} {
		c.count(s)
	}
	if lost, _ := c.Lost(); lost != 2+6 {
		t.Errorf("lost = %d, want 8", lost)
	}
	c = &Conn{}
	c.count(^uint32(0))
	c.count(1) // wrapped past 0
	if lost, _ := c.Lost(); lost != 1 {
		t.Errorf("lost across the wrap = %d, want 1", lost)
	}
}
