package ipt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// An ipset restore over netlink. `ipset -exist restore` spends about as
// much CPU parsing its input as the kernel spends adding the members
// (38,602 members into 452 sets: ~0.15 s of each, 0.31-0.33 s in all);
// sending the same commands from this process, a set's members in batches
// (one message carries up to nlBatch of them, as the ipset binary itself
// batches), took 0.15-0.17 s in a test namespace and 0.08 s in the
// agent's cold sync. Apply's set restores go this way in the process's
// own network namespace (ipsetRestore).

// nlBatch is the most members one add or del message carries (at most ~70
// bytes each: a message stays well under the 64 KiB receive buffer that
// the acknowledgement of a refused one, which echoes the request, needs).
const nlBatch = 256

// ipsetOp is one line of a restore input.
type ipsetOp struct {
	line    int    // 1-based line of the input
	verb    string // create, destroy, add, del, swap, flush
	set     string
	other   string // create: the type; swap: the second set
	family  uint8  // create: NFPROTO_IPV4 or NFPROTO_IPV6
	maxelem uint32 // create
	rev     uint8  // create: the revision (setRevision)
	elem    []byte // add, del: the member's IPSET_ATTR_DATA attribute
}

// nlTypes are the set types netlinkRestore creates.
var nlTypes = map[SetType]bool{HashIP: true, HashNet: true, HashIPPort: true}

// revisions holds, per set type and family ("hash:ip/2"), the revision
// netlinkRestore creates: the one the ipset binary would (setRevision).
var revisions struct {
	sync.Mutex
	byType map[string]uint8
	user   map[string]uint8 // the binary's newest revision of each type, once read
}

// setRevision returns the revision of set type typ and family fam that
// `ipset create` would ask for: the newest the kernel has (IPSET_CMD_TYPE)
// that the installed ipset binary knows too (its `--help` lists them), so
// that the binary can always list and save the set; false when there is
// none or either cannot be asked. Answers are kept for the process.
func setRevision(ctx context.Context, sock map[int]*nl.SocketHandle, typ string, fam uint8) (uint8, bool) {
	revisions.Lock()
	defer revisions.Unlock()
	key := typ + "/" + strconv.Itoa(int(fam))
	if rev, ok := revisions.byType[key]; ok {
		return rev, true
	}
	if revisions.user == nil {
		revisions.user = userRevisions(ctx) // nil again when it failed: asked again next time
	}
	umax, known := revisions.user[typ]
	kmin, kmax, err := kernelRevisions(sock, typ, fam)
	if !known || err != nil || min(umax, kmax) < kmin {
		return 0, false
	}
	if revisions.byType == nil {
		revisions.byType = make(map[string]uint8)
	}
	revisions.byType[key] = min(umax, kmax)
	return min(umax, kmax), true
}

// userRevisions reads the newest revision of each set type the ipset
// binary supports from its `--help` ("Supported set types:", then one
// "TYPE REVISION DESCRIPTION" line per revision); nil when it cannot.
func userRevisions(ctx context.Context) map[string]uint8 {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ipset", "--help").Output()
	if err != nil {
		return nil
	}
	_, types, ok := bytes.Cut(out, []byte("Supported set types:"))
	if !ok {
		return nil
	}
	user := make(map[string]uint8)
	for line := range bytes.Lines(types) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		rev, err := strconv.ParseUint(f[1], 10, 8)
		if err != nil {
			continue
		}
		if cur, ok := user[f[0]]; !ok || uint8(rev) > cur {
			user[f[0]] = uint8(rev)
		}
	}
	return user
}

// kernelRevisions asks the kernel for the oldest and newest revision of
// set type typ in family fam. Equivalent to what `ipset create` asks
// before it creates.
func kernelRevisions(sock map[int]*nl.SocketHandle, typ string, fam uint8) (lo, hi uint8, err error) {
	req := nl.NewNetlinkRequest(nl.IPSET_CMD_TYPE|unix.NFNL_SUBSYS_IPSET<<8, unix.NLM_F_ACK)
	req.Sockets = sock
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_INET, Version: nl.NFNETLINK_V0})
	b := putAttr(nil, nl.IPSET_ATTR_PROTOCOL, []byte{nl.IPSET_PROTOCOL})
	b = putAttr(b, nl.IPSET_ATTR_TYPENAME, zstr(typ))
	b = putAttr(b, nl.IPSET_ATTR_FAMILY, []byte{fam})
	req.AddRawData(b)
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for _, m := range msgs {
		if len(m) < nl.SizeofNfgenmsg {
			continue
		}
		eachAttr(m[nl.SizeofNfgenmsg:], func(t uint16, v []byte) {
			switch {
			case t == nl.IPSET_ATTR_REVISION && len(v) == 1:
				hi, found = v[0], found|1
			case t == nl.IPSET_ATTR_REVISION_MIN && len(v) == 1:
				lo, found = v[0], found|2
			}
		})
	}
	if found != 3 {
		return 0, 0, fmt.Errorf("set type %s: no revisions in the kernel's answer", typ)
	}
	return lo, hi, nil
}

// parseRestore parses input, the restore lines the Runner renders
// (RenderSets, renderUngrow, renderDestroySets, renderEntries); false for
// anything else, which the ipset binary then runs.
func parseRestore(input []byte) ([]ipsetOp, bool) {
	var ops []ipsetOp
	n := 0
	for raw := range bytes.Lines(input) {
		n++
		f := strings.Fields(string(raw))
		if len(f) == 0 {
			continue
		}
		op := ipsetOp{line: n, verb: f[0]}
		switch {
		case f[0] == "create" && len(f) == 7 && f[3] == "family" && f[5] == "maxelem":
			if !nlTypes[SetType(f[2])] {
				return nil, false
			}
			m, err := strconv.ParseUint(f[6], 10, 32)
			if err != nil {
				return nil, false
			}
			switch f[4] {
			case "inet":
				op.family = unix.NFPROTO_IPV4
			case "inet6":
				op.family = unix.NFPROTO_IPV6
			default:
				return nil, false
			}
			op.set, op.other, op.maxelem = f[1], f[2], uint32(m)
		case (f[0] == "destroy" || f[0] == "flush") && len(f) == 2:
			op.set = f[1]
		case f[0] == "swap" && len(f) == 3:
			op.set, op.other = f[1], f[2]
		case (f[0] == "add" || f[0] == "del") && (len(f) == 3 || len(f) == 4 && f[3] == "nomatch"):
			elem, ok := elemAttr(f[2], len(f) == 4, n)
			if !ok {
				return nil, false
			}
			op.set, op.elem = f[1], elem
		default:
			return nil, false
		}
		if len(op.set) > MaxSetName || op.verb == "swap" && len(op.other) > MaxSetName {
			return nil, false
		}
		ops = append(ops, op)
	}
	return ops, true
}

// elemAttr encodes value, in ipset's syntax ("ADDR", "ADDR/LEN",
// "ADDR,PROTO:PORT"; netlinkEntry), as an IPSET_ATTR_DATA attribute, with
// the nomatch flag when nomatch and its input line; false for what it
// cannot express. The line numbers (IPSET_ATTR_LINENO, in each member and
// in the message) are what the ipset binary sends too; without them the
// kernel took four times as long over the same members (0.7 s against
// 0.15-0.17 s for 38,602).
func elemAttr(value string, nomatch bool, line int) ([]byte, bool) {
	ent, ok := netlinkEntry(value)
	if !ok {
		return nil, false
	}
	addrType := uint16(nl.IPSET_ATTR_IPADDR_IPV6)
	ip := ent.IP
	if ip4 := ip.To4(); ip4 != nil {
		addrType, ip = nl.IPSET_ATTR_IPADDR_IPV4, ip4
	}
	var b []byte
	start := len(b)
	b = attrHeader(b)
	ipAt := len(b)
	b = attrHeader(b)
	b = putAttr(b, addrType|nl.NLA_F_NET_BYTEORDER, ip)
	b = closeAttr(b, ipAt, nl.IPSET_ATTR_IP|nl.NLA_F_NESTED)
	if ent.CIDR != 0 {
		b = putAttr(b, nl.IPSET_ATTR_CIDR, []byte{ent.CIDR})
	}
	if ent.Port != nil {
		b = putAttr(b, nl.IPSET_ATTR_PROTO, []byte{*ent.Protocol})
		b = putAttr(b, nl.IPSET_ATTR_PORT|nl.NLA_F_NET_BYTEORDER, binary.BigEndian.AppendUint16(nil, *ent.Port))
	}
	if nomatch {
		b = putAttr(b, nl.IPSET_ATTR_CADT_FLAGS|nl.NLA_F_NET_BYTEORDER, binary.BigEndian.AppendUint32(nil, nl.IPSET_FLAG_NOMATCH))
	}
	b = putAttr(b, nl.IPSET_ATTR_LINENO|nl.NLA_F_NET_BYTEORDER, binary.BigEndian.AppendUint32(nil, uint32(line)))
	return closeAttr(b, start, nl.IPSET_ATTR_DATA|nl.NLA_F_NESTED), true
}

// attrHeader appends the header of a nested attribute, its length and
// type patched in by closeAttr.
func attrHeader(b []byte) []byte { return append(b, 0, 0, 0, 0) }

// closeAttr writes the length and type of the attribute begun at start.
func closeAttr(b []byte, start int, typ uint16) []byte {
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	binary.NativeEndian.PutUint16(b[start+2:], typ)
	return b
}

// putAttr appends one attribute, padded to 4 bytes.
func putAttr(b []byte, typ uint16, val []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(val)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// zstr is s as a NUL-terminated attribute value.
func zstr(s string) []byte { return append([]byte(s), 0) }

// errNoNetlink says the restore did nothing: the ipset binary may run it.
var errNoNetlink = errors.New("not over netlink")

// netlinkRestore runs input as `ipset -exist restore` would: in order, a
// create of an existing identical set, an add of a present member and a
// del of an absent one doing nothing, stopping at the first failure (the
// lines before it stay done). A failure is a *RestoreError naming the
// line. It returns errNoNetlink, with nothing changed, when the input has
// a line it does not know, no netlink socket opens, a set it creates has
// no revision both the kernel and the ipset binary know (setRevision), or
// the kernel refuses the protocol or the type at the first command.
func netlinkRestore(ctx context.Context, input []byte) error {
	ops, ok := parseRestore(input)
	if !ok {
		return errNoNetlink
	}
	return netlinkRestoreOps(ctx, input, ops)
}

// netlinkRestoreOps is netlinkRestore of input, parsed as ops.
func netlinkRestoreOps(ctx context.Context, input []byte, ops []ipsetOp) error {
	if len(ops) == 0 {
		return nil
	}
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		return errNoNetlink
	}
	defer s.Close()
	sock := map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: {Socket: s}}
	for i := range ops {
		if ops[i].verb == "create" {
			rev, ok := setRevision(ctx, sock, ops[i].other, ops[i].family)
			if !ok {
				return errNoNetlink
			}
			ops[i].rev = rev
		}
	}
	for i := 0; i < len(ops); {
		if err := ctx.Err(); err != nil {
			return err
		}
		op := ops[i]
		j := i + 1
		if op.verb == "add" || op.verb == "del" {
			for j < len(ops) && j-i < nlBatch && ops[j].verb == op.verb && ops[j].set == op.set {
				j++
			}
		}
		err := ipsetRequest(sock, ops[i:j])
		if err != nil && j-i > 1 {
			// Find the member the kernel refused: the batch again, one
			// at a time (under -exist, the ones it added are no-ops).
			for k := i; k < j; k++ {
				if err = ipsetRequest(sock, ops[k:k+1]); err != nil {
					op = ops[k]
					break
				}
			}
		}
		if err != nil {
			var errno syscall.Errno
			if i == 0 && errors.As(err, &errno) && (errno == nl.IPSET_ERR_PROTOCOL || errno == nl.IPSET_ERR_FIND_TYPE) {
				return errNoNetlink
			}
			return netlinkRestoreError(input, op, err)
		}
		i = j
	}
	return nil
}

// ipsetRequest sends ops (one op, or adds or dels of one set) as one
// message and waits for its acknowledgement.
func ipsetRequest(sock map[int]*nl.SocketHandle, ops []ipsetOp) error {
	req := ipsetMessage(ops)
	req.Sockets = sock
	_, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	return err
}

// ipsetMessage is the request of ops (one op, or adds or dels of one set)
// as one message, acknowledged.
func ipsetMessage(ops []ipsetOp) *nl.NetlinkRequest {
	op := ops[0]
	var cmd int
	flags := unix.NLM_F_ACK // no NLM_F_EXCL: -exist
	switch op.verb {
	case "create":
		cmd, flags = nl.IPSET_CMD_CREATE, flags|unix.NLM_F_CREATE
	case "destroy":
		cmd = nl.IPSET_CMD_DESTROY
	case "flush":
		cmd = nl.IPSET_CMD_FLUSH
	case "swap":
		cmd = nl.IPSET_CMD_SWAP
	case "add":
		cmd = nl.IPSET_CMD_ADD
	case "del":
		cmd = nl.IPSET_CMD_DEL
	}
	req := nl.NewNetlinkRequest(cmd|unix.NFNL_SUBSYS_IPSET<<8, flags)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_INET, Version: nl.NFNETLINK_V0})
	b := putAttr(nil, nl.IPSET_ATTR_PROTOCOL, []byte{nl.IPSET_PROTOCOL})
	b = putAttr(b, nl.IPSET_ATTR_SETNAME, zstr(op.set))
	switch op.verb {
	case "create":
		b = putAttr(b, nl.IPSET_ATTR_TYPENAME, zstr(op.other))
		b = putAttr(b, nl.IPSET_ATTR_REVISION, []byte{op.rev})
		b = putAttr(b, nl.IPSET_ATTR_FAMILY, []byte{op.family})
		at := len(b)
		b = attrHeader(b)
		b = putAttr(b, nl.IPSET_ATTR_MAXELEM|nl.NLA_F_NET_BYTEORDER, binary.BigEndian.AppendUint32(nil, op.maxelem))
		b = closeAttr(b, at, nl.IPSET_ATTR_DATA|nl.NLA_F_NESTED)
	case "swap":
		b = putAttr(b, nl.IPSET_ATTR_SETNAME2, zstr(op.other))
	case "add", "del":
		b = putAttr(b, nl.IPSET_ATTR_LINENO|nl.NLA_F_NET_BYTEORDER, binary.BigEndian.AppendUint32(nil, uint32(op.line)))
		if len(ops) == 1 {
			b = append(b, op.elem...)
			break
		}
		at := len(b)
		b = attrHeader(b)
		for _, o := range ops {
			b = append(b, o.elem...)
		}
		b = closeAttr(b, at, nl.IPSET_ATTR_ADT|nl.NLA_F_NESTED)
	}
	req.AddRawData(b)
	return req
}

// ipsetErrText is what the ipset binary says for the kernel's errors
// that the Runner's inputs can meet (isBusy looks for the busy ones).
var ipsetErrText = map[syscall.Errno]string{
	syscall.ENOENT:                 "The set with the given name does not exist",
	syscall.EBUSY:                  "Device or resource busy",
	nl.IPSET_ERR_BUSY:              "Set cannot be destroyed: it is in use by a kernel component",
	nl.IPSET_ERR_EXIST_SETNAME2:    "The second set does not exist",
	nl.IPSET_ERR_TYPE_MISMATCH:     "The sets cannot be swapped: their type does not match",
	syscall.EEXIST:                 "Set cannot be created: set with the same name already exists",
	nl.IPSET_ERR_EXIST:             "Element cannot be added to the set: it's already added",
	nl.IPSET_ERR_INVALID_CIDR:      "The value of the CIDR parameter of the IP address is invalid",
	nl.IPSET_ERR_INVALID_FAMILY:    "Protocol family not supported by the set type",
	nl.IPSET_ERR_FIND_TYPE:         "Kernel error received: set type not supported",
	nl.IPSET_ERR_MAX_SETS:          "Kernel error received: maximal number of sets reached, cannot create more",
	nl.IPSET_ERR_IPADDR_IPV4:       "An IPv4 address is expected",
	nl.IPSET_ERR_IPADDR_IPV6:       "An IPv6 address is expected",
	nl.IPSET_ERR_TYPE_SPECIFIC:     "Hash is full, cannot add more elements",
	nl.IPSET_ERR_TYPE_SPECIFIC + 1: "Null-valued element, cannot be stored in a hash type of set",
	nl.IPSET_ERR_TYPE_SPECIFIC + 2: "Invalid protocol specified",
	nl.IPSET_ERR_TYPE_SPECIFIC + 3: "Protocol missing, but must be specified",
}

// netlinkRestoreError is the *RestoreError of op failing with err.
func netlinkRestoreError(input []byte, op ipsetOp, err error) error {
	msg := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if t, ok := ipsetErrText[errno]; ok {
			msg = t
		} else if errno >= nl.IPSET_ERR_PRIVATE {
			msg = nl.IPSetError(errno).Error()
		}
	}
	re := &RestoreError{Command: "ipset -exist restore (netlink)", Line: op.line,
		Stderr: fmt.Sprintf("Error in line %d: %s", op.line, msg), Err: err}
	lines := strings.Split(strings.TrimSuffix(string(input), "\n"), "\n")
	lo, hi := max(op.line-contextLines, 1), min(op.line+contextLines, len(lines))
	for n := lo; n <= hi; n++ {
		re.Context = append(re.Context, fmt.Sprintf("%d: %s", n, lines[n-1]))
	}
	return re
}
