package ipt

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
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
// reports an error as a *RestoreError naming the failing line.
func (r *Runner) AddEntries(ctx context.Context, entries []Entry) error {
	text, err := renderEntries("add", entries, nil)
	if err != nil {
		return fmt.Errorf("add entries: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if r.NetNS == "" && netlinkEntries(ctx, true, entries) {
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
	if r.NetNS == "" && netlinkEntries(ctx, false, entries) {
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
		if a, ok := memberAddr(e.Value); ok && a.Is4In6() {
			return nil, fmt.Errorf("%w: entry %q of %s is an IPv4-mapped IPv6 address", ErrInvalid, e.Value, e.Set)
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
	for name, s := range parseIPSetSave(string(out)) {
		if !Owned(name) {
			continue
		}
		for key := range s.Members {
			entries[Entry{Set: name, Value: strings.TrimSuffix(key, " nomatch")}] = true
		}
	}
	return entries, nil
}

// ipsetProtos are the protocols of hash:ip,port entries, by ipset's names.
var ipsetProtos = map[string]uint8{"tcp": syscall.IPPROTO_TCP, "udp": syscall.IPPROTO_UDP, "sctp": 132}

// netlinkEntries adds (add) or deletes entries through the ipset netlink
// interface of the calling thread's network namespace, with -exist
// semantics: an entry already present (add) or absent (del) is not an
// error, and neither, for del, is a missing set. It reports whether every
// entry was done: true only when the kernel acknowledged each entry's
// request as done; false when an entry cannot be expressed, the kernel
// refused one, or an acknowledgement is missing or unreadable, and some
// entries may then have been done.
//
// One request per entry (its own set), all of them over one socket, up to
// entriesBatch written at once and their acknowledgements read after: the
// kernel handles the requests of one write in order and queues each
// acknowledgement before the write returns. A pod's ADD in issue 10's
// world puts it in 13 sets; one request and acknowledgement at a time
// (two system calls each) took 0.33-0.36 ms in a namespace holding the
// world's 894 sets.
//
// Equivalent to: `ipset -exist add SET VALUE` (or del) for each entry.
func netlinkEntries(ctx context.Context, add bool, entries []Entry) bool {
	verb := "del"
	if add {
		verb = "add"
	}
	reqs := make([]*nl.NetlinkRequest, len(entries))
	for i, e := range entries {
		elem, ok := elemAttr(e.Value, false, i+1)
		if !ok {
			return false
		}
		reqs[i] = ipsetMessage([]ipsetOp{{line: i + 1, verb: verb, set: e.Set, elem: elem}}) // -exist, as a restore's
	}
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		return false
	}
	defer s.Close()
	// Every acknowledgement is queued before the write returns: waiting
	// longer than this means one was lost (a full receive buffer).
	if err := s.SetReceiveTimeout(&unix.Timeval{Sec: 1}); err != nil {
		return false
	}
	for len(reqs) > 0 {
		if ctx.Err() != nil {
			return false
		}
		n := min(len(reqs), entriesBatch)
		if !ipsetBatch(s, reqs[:n], !add) {
			return false
		}
		reqs = reqs[n:]
	}
	return true
}

// entriesBatch is the most requests netlinkEntries writes at once. An
// acknowledgement takes ~1 KiB of the socket's receive buffer (the
// buffer's accounting, for a 36-byte message; one that echoes a refused
// request, more): 64 of them stay well within its default 208 KiB.
const entriesBatch = 64

// ipsetBatch writes reqs to s in one system call and reads one
// acknowledgement for each. It reports whether every one acknowledged
// success (or, with missingOK, ENOENT: a del from a set that is gone).
func ipsetBatch(s *nl.NetlinkSocket, reqs []*nl.NetlinkRequest, missingOK bool) bool {
	pending := make(map[uint32]bool, len(reqs))
	var out []byte
	for _, req := range reqs {
		pending[req.Seq] = true
		out = append(out, req.Serialize()...)
	}
	if err := unix.Sendto(s.GetFd(), out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return false
	}
	for len(pending) > 0 {
		msgs, _, err := s.Receive()
		if err != nil {
			return false
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 || !pending[m.Header.Seq] {
				return false
			}
			delete(pending, m.Header.Seq)
			errno := -int32(binary.NativeEndian.Uint32(m.Data[:4]))
			if errno != 0 && !(missingOK && syscall.Errno(errno) == syscall.ENOENT) {
				return false
			}
		}
	}
	return true
}

// netlinkEntry parses a value in ipset's own syntax: "ADDR" (hash:ip),
// "ADDR/LEN" (hash:net) or "ADDR,PROTO:PORT" (hash:ip,port).
func netlinkEntry(value string) (*netlink.IPSetEntry, bool) {
	addrPart, portPart, hasPort := strings.Cut(value, ",")
	ent := &netlink.IPSetEntry{}
	// An IPv4-mapped IPv6 address would be sent as IPv4, and a prefix of
	// length 0 without its length (a host to the kernel): neither is sent.
	if p, err := netip.ParsePrefix(addrPart); err == nil && !hasPort && p.Bits() > 0 && !p.Addr().Is4In6() {
		ent.IP, ent.CIDR = net.IP(p.Addr().AsSlice()), uint8(p.Bits())
	} else if a, err := netip.ParseAddr(addrPart); err == nil && a.Zone() == "" && !a.Is4In6() {
		ent.IP = net.IP(a.AsSlice())
	} else {
		return nil, false
	}
	if hasPort {
		protoName, portStr, ok := strings.Cut(portPart, ":")
		proto, known := ipsetProtos[strings.ToLower(protoName)]
		port, err := strconv.ParseUint(portStr, 10, 16)
		if !ok || !known || err != nil {
			return nil, false
		}
		p16 := uint16(port)
		ent.Protocol, ent.Port = &proto, &p16
	}
	return ent, true
}
