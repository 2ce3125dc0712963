package ipt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// AddEntries adds entries to their sets; entries already present are fine.
// Every set must exist.
// Equivalent to: `ipset -exist restore` of `add SET VALUE` lines.
//
// In the process's own network namespace (NetNS empty: the plugin, the
// agent) the entries go to the kernel over netlink, from this process: no
// `ipset` process is started, which is most of what ADD would otherwise pay
// for them (~1-2 ms). When that does not work out (no socket, an entry it
// cannot encode, the kernel refuses one), `ipset -exist restore` of all the
// entries runs instead, which is harmless after a partial success and
// reports errors exactly as before.
func (r *Runner) AddEntries(ctx context.Context, entries []Entry) error {
	text, err := renderEntries("add", entries, nil)
	if err != nil {
		return fmt.Errorf("add entries: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if r.NetNS == "" && netlinkEntries(ctx, r.Timeout, ipsetCmdAdd, entries) {
		return nil
	}
	if err := r.ipsetRestore(ctx, text); err != nil {
		return fmt.Errorf("add entries: %w", err)
	}
	return nil
}

// DelEntries removes entries from their sets; entries or sets that do not
// exist are fine, because CNI DEL must be idempotent. Over netlink (see
// AddEntries) it starts no process; otherwise it costs two: `ipset list -n`,
// then `ipset -exist restore` of `del SET VALUE` lines for the sets that
// exist.
func (r *Runner) DelEntries(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if _, err := renderEntries("del", entries, nil); err != nil {
		return fmt.Errorf("del entries: %w", err)
	}
	if r.NetNS == "" && netlinkEntries(ctx, r.Timeout, ipsetCmdDel, entries) {
		return nil
	}
	names, err := r.listSetNames(ctx)
	if err != nil {
		return fmt.Errorf("del entries: %w", err)
	}
	text, err := renderEntries("del", entries, names)
	if err != nil {
		return fmt.Errorf("del entries: %w", err)
	}
	if err := r.ipsetRestore(ctx, text); err != nil {
		return fmt.Errorf("del entries: %w", err)
	}
	return nil
}

// renderEntries returns one `VERB SET VALUE` line per entry; when only is not
// nil, entries of sets not in it are left out. Set names must be ours.
func renderEntries(verb string, entries []Entry, only map[string]bool) ([]byte, error) {
	var b strings.Builder
	for _, e := range entries {
		if err := checkOwnedName(e.Set, MaxSetName); err != nil {
			return nil, err
		}
		if err := checkToken("entry of "+e.Set, e.Value); err != nil {
			return nil, err
		}
		if only != nil && !only[e.Set] {
			continue
		}
		b.WriteString(verb + " " + e.Set + " " + e.Value + "\n")
	}
	return []byte(b.String()), nil
}

// ListEntries returns every member of every set of ours, with values as
// ipset prints them (shortest address form, "10.0.0.1,tcp:80"; the nomatch
// flag is dropped). Equivalent to: `ipset save`.
func (r *Runner) ListEntries(ctx context.Context) (map[Entry]bool, error) {
	out, err := r.run(ctx, nil, "ipset", "save")
	if err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	entries := make(map[Entry]bool)
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "add" && Owned(f[1]) {
			entries[Entry{Set: f[1], Value: f[2]}] = true
		}
	}
	return entries, nil
}

// The kernel's ipset netlink protocol (linux/netfilter/ipset/ip_set.h), as
// much of it as adding and deleting entries takes.
const (
	nfnlSubsysIPSet = 6 // NFNL_SUBSYS_IPSET
	ipsetProtocol   = 6 // IPSET_PROTOCOL_MIN: every kernel since 3.x speaks it

	ipsetCmdAdd = 9  // IPSET_CMD_ADD
	ipsetCmdDel = 10 // IPSET_CMD_DEL

	ipsetAttrProtocol = 1 // IPSET_ATTR_PROTOCOL, u8
	ipsetAttrSetName  = 2 // IPSET_ATTR_SETNAME, NUL-terminated string
	ipsetAttrData     = 7 // IPSET_ATTR_DATA, nested

	ipsetAttrIP    = 1 // IPSET_ATTR_IP, nested address
	ipsetAttrCIDR  = 3 // IPSET_ATTR_CIDR, u8
	ipsetAttrPort  = 4 // IPSET_ATTR_PORT, be16
	ipsetAttrProto = 7 // IPSET_ATTR_PROTO, u8

	ipsetAttrIPv4 = 1 // IPSET_ATTR_IPADDR_IPV4, be32
	ipsetAttrIPv6 = 2 // IPSET_ATTR_IPADDR_IPV6, 16 bytes

	nlaFNested    = 1 << 15 // NLA_F_NESTED
	nlaFNetOrder  = 1 << 14 // NLA_F_NET_BYTEORDER
	netlinkFilter = 12      // NETLINK_NETFILTER
	nfnetlinkV0   = 0
)

var netlinkSeq atomic.Uint32

// netlinkEntries adds (cmd ipsetCmdAdd) or deletes (ipsetCmdDel) entries
// through a NETLINK_NETFILTER socket of the calling process's network
// namespace, one request each, with -exist semantics: an entry already
// present (add) or absent (del) is not an error, and neither, for del, is a
// missing set. It reports whether every entry was done; false when netlink
// cannot be used (no socket, an entry it cannot encode) or the kernel
// refused an entry, and some entries may then have been done.
func netlinkEntries(ctx context.Context, timeout time.Duration, cmd uint16, entries []Entry) bool {
	msgs := make([][]byte, len(entries))
	for i, e := range entries {
		data, ok := encodeEntry(e.Value)
		if !ok {
			return false
		}
		msgs[i] = ipsetMessage(cmd, e.Set, data)
	}
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, netlinkFilter)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return false
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	tv := syscall.NsecToTimeval(max(time.Until(deadline), time.Millisecond).Nanoseconds())
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	buf := make([]byte, 8192)
	for _, msg := range msgs {
		if ctx.Err() != nil {
			return false
		}
		seq := netlinkSeq.Add(1)
		binary.NativeEndian.PutUint32(msg[8:], seq)
		errno, err := netlinkRoundTrip(fd, msg, seq, buf)
		if err != nil || (errno != 0 && !(cmd == ipsetCmdDel && errno == syscall.ENOENT)) {
			return false
		}
	}
	return true
}

// netlinkRoundTrip sends one request and returns the errno of its
// acknowledgement (0 for success).
func netlinkRoundTrip(fd int, msg []byte, seq uint32, buf []byte) (syscall.Errno, error) {
	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return 0, err
	}
	for range 64 { // bounded: the kernel answers each request with one ack
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		replies, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return 0, err
		}
		for _, m := range replies {
			if m.Header.Seq != seq || m.Header.Type != syscall.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return 0, errors.New("short netlink error message")
			}
			return syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data))), nil
		}
	}
	return 0, errors.New("no netlink acknowledgement")
}

// ipsetMessage is the netlink request of cmd for the set name and the
// IPSET_ATTR_DATA payload data. The sequence number is filled in later.
func ipsetMessage(cmd uint16, set string, data []byte) []byte {
	var body []byte
	body = append(body, syscall.AF_INET, nfnetlinkV0, 0, 0) // struct nfgenmsg
	body = appendAttr(body, ipsetAttrProtocol, []byte{ipsetProtocol})
	body = appendAttr(body, ipsetAttrSetName, append([]byte(set), 0))
	body = appendAttr(body, ipsetAttrData|nlaFNested, data)
	msg := make([]byte, syscall.NLMSG_HDRLEN, syscall.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(syscall.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], nfnlSubsysIPSet<<8|cmd)
	binary.NativeEndian.PutUint16(msg[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_ACK)
	return append(msg, body...)
}

// appendAttr appends one netlink attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, payload []byte) []byte {
	var hdr [4]byte
	binary.NativeEndian.PutUint16(hdr[0:], uint16(4+len(payload)))
	binary.NativeEndian.PutUint16(hdr[2:], typ)
	b = append(append(b, hdr[:]...), payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// ipsetProtos are the protocols of "ADDR,PROTO:PORT" entries.
var ipsetProtos = map[string]byte{"tcp": syscall.IPPROTO_TCP, "udp": syscall.IPPROTO_UDP, "sctp": 132}

// encodeEntry returns the IPSET_ATTR_DATA payload of an entry in ipset's
// syntax: "ADDR" (hash:ip), "ADDR/LEN" (hash:net) or "ADDR,PROTO:PORT"
// (hash:ip,port); false for anything else.
func encodeEntry(value string) ([]byte, bool) {
	addrPart, portPart, hasPort := strings.Cut(value, ",")
	var data []byte
	var addr netip.Addr
	if p, err := netip.ParsePrefix(addrPart); err == nil && !hasPort {
		addr = p.Addr()
		data = appendAttr(nil, ipsetAttrCIDR, []byte{byte(p.Bits())})
	} else if a, err := netip.ParseAddr(addrPart); err == nil && a.Zone() == "" {
		addr = a
	} else {
		return nil, false
	}
	var ip []byte
	if addr.Is4() {
		a4 := addr.As4()
		ip = appendAttr(nil, ipsetAttrIPv4|nlaFNetOrder, a4[:])
	} else {
		a16 := addr.As16()
		ip = appendAttr(nil, ipsetAttrIPv6|nlaFNetOrder, a16[:])
	}
	data = append(appendAttr(nil, ipsetAttrIP|nlaFNested, ip), data...)
	if hasPort {
		protoName, portStr, ok := strings.Cut(portPart, ":")
		proto, known := ipsetProtos[strings.ToLower(protoName)]
		port, err := strconv.ParseUint(portStr, 10, 16)
		if !ok || !known || err != nil {
			return nil, false
		}
		data = appendAttr(data, ipsetAttrPort|nlaFNetOrder, binary.BigEndian.AppendUint16(nil, uint16(port)))
		data = appendAttr(data, ipsetAttrProto, []byte{proto})
	}
	return data, true
}
