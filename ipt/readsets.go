package ipt

import (
	"context"
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// netlinkReadMax is the most sets readMembers reads one by one over
// netlink; for more, one `ipset save` (~1 ms to start, plus the dump) is
// as cheap and bounds the number of round trips.
const netlinkReadMax = 64

// readMembers returns what the kernel holds now in the sets of desired that
// existing says exist with the same type and family (the sets a growth adds
// members to): their members as memberKey forms. A set the kernel no longer
// has is absent from the result.
//
// In the process's own network namespace (NetNS empty) the sets are read
// over netlink, from the calling thread: no process is started. Otherwise
// (a namespace reached through `ip netns exec`, more than netlinkReadMax
// sets, any netlink failure) one `ipset save` reads them all.
func (r *Runner) readMembers(ctx context.Context, desired []Set, existing map[string]SetInfo) (map[string]*savedSet, error) {
	var grown []Set
	for _, s := range desired {
		if info, ok := existing[s.Name]; ok && info.Type == s.Type && info.Family == s.Family {
			grown = append(grown, s)
		}
	}
	out := make(map[string]*savedSet, len(grown))
	if len(grown) == 0 {
		return out, nil
	}
	if r.NetNS == "" && len(grown) <= netlinkReadMax {
		ok := true
		for _, s := range grown {
			var got *savedSet
			if got, ok = netlinkMembers(s); !ok {
				break
			}
			out[s.Name] = got
		}
		if ok {
			return out, nil
		}
	}
	text, err := r.run(ctx, nil, "ipset", "save")
	if err != nil {
		return nil, err
	}
	all := parseIPSetSave(string(text))
	clear(out)
	for _, s := range grown {
		if got := all[s.Name]; got != nil {
			out[s.Name] = got
		}
	}
	return out, nil
}

// netlinkMembers dumps set s over the ipset netlink interface of the
// calling thread's network namespace (`ipset list NAME`), its members in
// memberKey form, nomatch flags included; false when it cannot (the kernel
// refused, the set is of another type or family now, an entry it cannot
// render).
func netlinkMembers(s Set) (*savedSet, bool) {
	req := nl.NewNetlinkRequest(nl.IPSET_CMD_LIST|unix.NFNL_SUBSYS_IPSET<<8, nl.GetIpsetFlags(nl.IPSET_CMD_LIST))
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_NETLINK, Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(s.Name)))
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return nil, false
	}
	fam := map[Family]byte{IPv4: unix.NFPROTO_IPV4, IPv6: unix.NFPROTO_IPV6}[s.Family]
	got := &savedSet{SetInfo: SetInfo{Type: s.Type, Family: s.Family}, Members: make(map[string]bool)}
	for _, msg := range msgs {
		if len(msg) < 4 {
			return nil, false
		}
		ok := true
		eachAttr(msg[4:], func(typ uint16, v []byte) {
			switch typ {
			case nl.IPSET_ATTR_SETNAME:
				ok = ok && strings.TrimRight(string(v), "\x00") == s.Name
			case nl.IPSET_ATTR_TYPENAME:
				ok = ok && strings.TrimRight(string(v), "\x00") == string(s.Type)
			case nl.IPSET_ATTR_FAMILY:
				ok = ok && len(v) == 1 && v[0] == fam
			case nl.IPSET_ATTR_ADT:
				eachAttr(v, func(typ uint16, entry []byte) {
					key, valid := entryKey(s.Type, entry)
					ok = ok && typ == nl.IPSET_ATTR_DATA && valid
					got.Members[key] = true
				})
			}
		})
		if !ok {
			return nil, false
		}
	}
	return got, true
}

// entryKey renders the attributes of one entry of a hash:ip, hash:ip,port
// or hash:net set in memberKey form: "ADDR", "ADDR/LEN" (masked, a host
// route without its length), "ADDR,PROTO:PORT", " nomatch" when so flagged.
func entryKey(t SetType, data []byte) (string, bool) {
	var addr netip.Addr
	cidr, proto, port, flags := -1, -1, -1, uint32(0)
	eachAttr(data, func(typ uint16, v []byte) {
		switch typ {
		case nl.IPSET_ATTR_IP:
			eachAttr(v, func(_ uint16, ip []byte) { addr, _ = netip.AddrFromSlice(ip) })
		case nl.IPSET_ATTR_CIDR:
			if len(v) == 1 {
				cidr = int(v[0])
			}
		case nl.IPSET_ATTR_PROTO:
			if len(v) == 1 {
				proto = int(v[0])
			}
		case nl.IPSET_ATTR_PORT:
			if len(v) == 2 {
				port = int(binary.BigEndian.Uint16(v))
			}
		case nl.IPSET_ATTR_CADT_FLAGS:
			if len(v) == 4 {
				flags = binary.BigEndian.Uint32(v)
			}
		}
	})
	if !addr.IsValid() {
		return "", false
	}
	key := addr.String()
	switch t {
	case HashIP:
	case HashNet:
		p, err := addr.Prefix(cidr)
		if err != nil {
			return "", false
		}
		if !p.IsSingleIP() {
			key = p.String()
		}
	case HashIPPort:
		name, ok := protoNames[proto]
		if !ok || port < 0 {
			return "", false
		}
		key += "," + name + ":" + strconv.Itoa(port)
	default:
		return "", false
	}
	if flags&nl.IPSET_FLAG_NOMATCH != 0 {
		key += " nomatch"
	}
	return key, true
}

// protoNames are ipset's names of the protocols of hash:ip,port entries.
var protoNames = func() map[int]string {
	m := make(map[int]string, len(ipsetProtos))
	for name, p := range ipsetProtos {
		m[int(p)] = name
	}
	return m
}()

// eachAttr calls f with the type (flags masked off) and value of each
// netlink attribute in data, in order; it stops at a malformed one.
func eachAttr(data []byte, f func(typ uint16, v []byte)) {
	for len(data) >= 4 {
		n := int(nl.NativeEndian().Uint16(data))
		if n < 4 || n > len(data) {
			return
		}
		f(nl.NativeEndian().Uint16(data[2:])&nl.NLA_TYPE_MASK, data[4:n])
		data = data[min((n+3)&^3, len(data)):]
	}
}
