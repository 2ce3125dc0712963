package nflog

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// Flow is what a drop record says of a packet: its addresses, protocol and
// ports (0 for protocols without ports, and for a fragment after the first).
type Flow struct {
	Src, Dst         netip.Addr
	Protocol         string // TCP, UDP, SCTP, ICMP, ICMPv6, or the number
	SrcPort, DstPort uint16
}

var protocols = map[uint8]string{1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}

// withPorts are the protocols whose header starts with the source and
// destination ports.
var withPorts = map[uint8]bool{6: true, 17: true, 132: true}

// Decode reads the network and transport headers at the start of payload
// (IPv4 or IPv6 by its version nibble).
func Decode(payload []byte) (Flow, error) {
	if len(payload) == 0 {
		return Flow{}, errors.New("empty packet")
	}
	switch payload[0] >> 4 {
	case 4:
		return decode4(payload)
	case 6:
		return decode6(payload)
	}
	return Flow{}, errors.New("neither IPv4 nor IPv6")
}

func decode4(b []byte) (Flow, error) {
	if len(b) < 20 {
		return Flow{}, errors.New("short IPv4 header")
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl {
		return Flow{}, errors.New("bad IPv4 header length")
	}
	f := Flow{Src: netip.AddrFrom4([4]byte(b[12:16])), Dst: netip.AddrFrom4([4]byte(b[16:20]))}
	first := binary.BigEndian.Uint16(b[6:])&0x1fff == 0 // fragment offset 0
	f.setTransport(b[9], b[ihl:], first)
	return f, nil
}

func decode6(b []byte) (Flow, error) {
	if len(b) < 40 {
		return Flow{}, errors.New("short IPv6 header")
	}
	f := Flow{Src: netip.AddrFrom16([16]byte(b[8:24])), Dst: netip.AddrFrom16([16]byte(b[24:40]))}
	next, rest, first := b[6], b[40:], true
headers:
	for range 8 { // extension headers: hop-by-hop, routing, fragment, destination options
		switch next {
		case 0, 43, 60:
			if len(rest) < 8 {
				return f, nil
			}
			n := (int(rest[1]) + 1) * 8
			if len(rest) < n {
				f.Protocol = protocolName(next)
				return f, nil
			}
			next, rest = rest[0], rest[n:]
			continue
		case 44:
			if len(rest) < 8 {
				return f, nil
			}
			first = binary.BigEndian.Uint16(rest[2:])&0xfff8 == 0
			next, rest = rest[0], rest[8:]
			continue
		}
		break headers
	}
	f.setTransport(next, rest, first)
	return f, nil
}

func (f *Flow) setTransport(proto uint8, l4 []byte, first bool) {
	f.Protocol = protocolName(proto)
	if withPorts[proto] && first && len(l4) >= 4 {
		f.SrcPort, f.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
	}
}

func protocolName(p uint8) string {
	if n := protocols[p]; n != "" {
		return n
	}
	return strconv.Itoa(int(p))
}
