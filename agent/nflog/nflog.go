// Package nflog reads one NFLOG group of the current network namespace over
// netfilter netlink (nfnetlink_log), as `ulogd` or `tcpdump -i nflog:G` do,
// and decodes the packets the kernel copies to it. It uses raw netlink
// sockets only (golang.org/x/sys/unix); nothing here knows about policies.
package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The nfnetlink_log protocol (linux/netfilter/nfnetlink_log.h).
const (
	msgPacket = 0 // NFULNL_MSG_PACKET
	msgConfig = 1 // NFULNL_MSG_CONFIG

	attrPacketHdr  = 1  // NFULA_PACKET_HDR
	attrTimestamp  = 3  // NFULA_TIMESTAMP
	attrIfIn       = 4  // NFULA_IFINDEX_INDEV
	attrIfOut      = 5  // NFULA_IFINDEX_OUTDEV
	attrPhysOut    = 7  // NFULA_IFINDEX_PHYSOUTDEV: the bridge port it leaves by
	attrPayload    = 9  // NFULA_PAYLOAD: the packet from its network header
	attrPrefix     = 10 // NFULA_PREFIX, NUL-terminated
	attrSeq        = 12 // NFULA_SEQ: the instance's own sequence number
	cfgAttrCmd     = 1  // NFULA_CFG_CMD
	cfgAttrMode    = 2  // NFULA_CFG_MODE
	cfgAttrFlags   = 6  // NFULA_CFG_FLAGS
	cfgCmdBind     = 1  // NFULNL_CFG_CMD_BIND
	cfgCmdPFBind   = 3  // NFULNL_CFG_CMD_PF_BIND (no-op since Linux 3.17)
	copyPacket     = 2  // NFULNL_COPY_PACKET
	cfgFlagSeq     = 1  // NFULNL_CFG_F_SEQ
	nlaTypeMask    = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
	copyRange      = 128 // bytes of each packet: IPv6 header, a few extension headers, ports
	defaultRecvBuf = 1 << 20
)

// Packet is one message of the group: a packet a rule logged.
type Packet struct {
	Family  uint8  // unix.AF_INET or unix.AF_INET6
	Prefix  string // the rule's --nflog-prefix
	Payload []byte // the first bytes of the packet, from its network header
	// Bridged: the packet is being bridged from port to port (br_netfilter
	// knows its physical output port: what `--physdev-is-bridged` tests),
	// not routed.
	Bridged bool
	InDev   uint32
	OutDev  uint32
	Time    time.Time // the kernel's timestamp, or when it was read
	Seq     uint32    // the group's sequence number (Conn asks for it)
}

// Conn is a netlink socket bound to one NFLOG group.
type Conn struct {
	f     *os.File
	group uint16
	buf   []byte
	// lost counts the messages the kernel could not queue to this socket
	// (sequence gaps); overruns the ENOBUFS errors that announced them.
	lost, overruns uint64
	seq            uint32
	seen           bool
}

// Open binds NFLOG group in the current network namespace, copying
// copyRange bytes of each packet, with sequence numbers, and a receive
// buffer of recvBuf bytes (0: 1 MiB). Only one socket can bind a group:
// another reader of the same group makes Open fail (EBUSY).
// Equivalent to what `ulogd` does with its NFLOG plugin at start.
func Open(group uint16, recvBuf int) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("nflog: netlink socket: %w", err)
	}
	if recvBuf <= 0 {
		recvBuf = defaultRecvBuf
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, recvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, recvBuf) // without CAP_NET_ADMIN
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nflog: bind netlink socket: %w", err)
	}
	c := &Conn{f: os.NewFile(uintptr(fd), "nflog"), group: group, buf: make([]byte, 1<<16)}
	if err := c.configure(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// configure binds the group: PF_BIND for both families (kernels before
// 3.17 need it), BIND, copy mode, sequence numbers; each acknowledged.
func (c *Conn) configure() error {
	for _, pf := range []uint8{unix.AF_INET, unix.AF_INET6} {
		_ = c.config(pf, 0, attr(cfgAttrCmd, []byte{cfgCmdPFBind})) // refused by no kernel we support
	}
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, copyRange)
	mode[4] = copyPacket
	steps := []struct {
		what string
		attr []byte
	}{
		{"bind group", attr(cfgAttrCmd, []byte{cfgCmdBind})},
		{"copy mode", attr(cfgAttrMode, mode)},
		{"sequence numbers", attr(cfgAttrFlags, binary.BigEndian.AppendUint16(nil, cfgFlagSeq))},
	}
	for _, s := range steps {
		if err := c.config(unix.AF_UNSPEC, c.group, s.attr); err != nil {
			return fmt.Errorf("nflog: group %d: %s: %w", c.group, s.what, err)
		}
	}
	return nil
}

// config sends one NFULNL_MSG_CONFIG request and waits for its ack.
func (c *Conn) config(family uint8, resID uint16, attrs ...[]byte) error {
	body := []byte{family, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(body[2:], resID)
	for _, a := range attrs {
		body = append(body, a...)
	}
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], unix.NFNL_SUBSYS_ULOG<<8|msgConfig)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	msg = append(msg, body...)
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	return c.ack()
}

// ack reads the reply to a config request: an NLMSG_ERROR, 0 for success.
func (c *Conn) ack() error {
	deadline := time.Now().Add(5 * time.Second)
	_ = c.f.SetReadDeadline(deadline)
	defer c.f.SetReadDeadline(time.Time{})
	for time.Now().Before(deadline) {
		n, err := c.recv()
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(c.buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
		}
	}
	return errors.New("no acknowledgement")
}

// recv reads one datagram through the runtime's poller, so that Close
// ends a blocked Read.
func (c *Conn) recv() (int, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), c.buf, 0)
		return rerr != unix.EAGAIN
	}); err != nil {
		return 0, err
	}
	return n, rerr
}

// Close releases the socket (and the group); a Read in progress returns.
func (c *Conn) Close() error { return c.f.Close() }

// Lost returns how many messages the kernel could not deliver to this
// socket (gaps in the group's sequence numbers) and how many times a read
// failed with ENOBUFS (the socket's buffer overran).
func (c *Conn) Lost() (messages, overruns uint64) { return c.lost, c.overruns }

// Read blocks until messages arrive and calls fn for each packet, in order.
// It returns on an error other than ENOBUFS (counted, then reading goes on),
// such as the socket being closed.
func (c *Conn) Read(fn func(Packet)) error {
	n, err := c.recv()
	if errors.Is(err, unix.ENOBUFS) {
		c.overruns++
		return nil
	}
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(c.buf[:n])
	if err != nil {
		return fmt.Errorf("nflog: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.NFNL_SUBSYS_ULOG<<8|msgPacket || len(m.Data) < 4 {
			continue
		}
		p, err := parsePacket(m.Data)
		if err != nil {
			continue // a message we cannot read is not a drop we can describe
		}
		c.count(p.Seq)
		fn(p)
	}
	return nil
}

// count adds the gap before seq to the lost messages.
func (c *Conn) count(seq uint32) {
	if c.seen && seq != c.seq+1 {
		c.lost += uint64(seq - c.seq - 1)
	}
	c.seq, c.seen = seq, true
}

// parsePacket decodes the nfgenmsg and attributes of a packet message.
func parsePacket(data []byte) (Packet, error) {
	p := Packet{Family: data[0], Time: time.Now()}
	b := data[4:]
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return Packet{}, errors.New("bad attribute length")
		}
		v := b[4:l]
		switch typ {
		case attrPayload:
			p.Payload = append([]byte(nil), v...)
		case attrPrefix:
			if i := indexByte(v, 0); i >= 0 {
				v = v[:i]
			}
			p.Prefix = string(v)
		case attrPhysOut:
			p.Bridged = true
		case attrIfIn:
			p.InDev = be32(v)
		case attrIfOut:
			p.OutDev = be32(v)
		case attrSeq:
			p.Seq = be32(v)
		case attrTimestamp:
			if len(v) >= 16 {
				sec, usec := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
				p.Time = time.Unix(int64(sec), int64(usec)*1000)
			}
		}
		b = b[min(len(b), (l+3)&^3):]
	}
	return p, nil
}

func be32(v []byte) uint32 {
	if len(v) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// attr encodes one netlink attribute, padded to 4 bytes.
func attr(typ uint16, v []byte) []byte {
	l := 4 + len(v)
	out := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(out, uint16(l))
	binary.NativeEndian.PutUint16(out[2:], typ)
	copy(out[4:], v)
	return out
}
