package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// DefaultProbeTimeout bounds one probe attempt; a denied probe costs two
// attempts (see Probe).
const DefaultProbeTimeout = time.Second

// Host is something traffic is sent from or to: a *Pod, a *Node, an
// *Outside, or a Source built by hand.
type Host interface {
	// Label names the host in a truth table.
	Label() string
	// Addr is the address the host is reached on.
	Addr() string
	// Endpoint is the namespace to send from and the source address to
	// bind ("" lets the kernel choose).
	Endpoint() (netnsPath, sourceIP string)
}

// Source is a Host given by hand: any namespace path, and an address that
// is both the source of its probes and where it is reached.
type Source struct {
	Name      string // label; default IP
	NetNSPath string
	IP        string
}

// Label returns Name, or IP when Name is empty.
func (s Source) Label() string {
	if s.Name != "" {
		return s.Name
	}
	return s.IP
}

// Addr returns IP.
func (s Source) Addr() string { return s.IP }

// Endpoint returns NetNSPath and IP.
func (s Source) Endpoint() (string, string) { return s.NetNSPath, s.IP }

// Label is the node name.
func (n *Node) Label() string { return n.Name }

// Addr is the bridge gateway address, the node's address on the pod subnet
// (the IPv6 one on an IPv6-only node).
func (n *Node) Addr() string {
	if n.Gateway == "" {
		return n.Gateway6
	}
	return n.Gateway
}

// Endpoint is the node namespace (host-network traffic, kubelet probes).
func (n *Node) Endpoint() (string, string) { return n.NetNSPath, "" }

// Serve starts echo servers on all addresses of the node namespace
// (a host-network process); they stop on Close.
func (n *Node) Serve(ports ...int) error {
	s, err := Serve(n.NetNSPath, "", ports...)
	if err != nil {
		return err
	}
	n.track(s)
	return nil
}

// Probe reports whether from reaches toIP:port over proto ("tcp" or "udp").
// TCP connects, writes a token and reads the echo; UDP sends the token as a
// datagram and waits for the echo. A timeout of 0 means
// DefaultProbeTimeout. A failed attempt is retried once, so one lost packet
// cannot turn "allowed" into "denied"; a denied probe therefore takes up to
// twice the timeout (less when the packet is rejected).
func Probe(from Host, toIP, proto string, port int, timeout time.Duration) bool {
	if ProbeOnce(from, toIP, proto, port, timeout) == nil {
		return true
	}
	return ProbeOnce(from, toIP, proto, port, timeout) == nil
}

// ProbeOnce is a single probe attempt; it returns why it failed.
func ProbeOnce(from Host, toIP, proto string, port int, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	deadline := time.Now().Add(timeout)
	path, src := from.Endpoint()
	conn, err := dialIn(path, src, toIP, proto, port, deadline)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	if _, err := conn.Write(token); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(token))
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if !bytes.Equal(got, token) {
		return errors.New("echo mismatch")
	}
	return nil
}

// Dial opens a connection from a host to toIP:port over proto ("tcp" or
// "udp"), for tests that keep one open across a change; timeout bounds the
// dial (0 means DefaultProbeTimeout). The caller closes it.
func Dial(from Host, toIP, proto string, port int, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	path, src := from.Endpoint()
	return dialIn(path, src, toIP, proto, port, time.Now().Add(timeout))
}

// dialIn creates the socket on a thread locked into the namespace at
// path; the socket stays in that namespace afterwards.
func dialIn(path, src, toIP, proto string, port int, deadline time.Time) (net.Conn, error) {
	if _, err := netip.ParseAddr(toIP); err != nil { // zones allowed: fe80::1%eth0
		return nil, fmt.Errorf("probe: bad destination %q", toIP)
	}
	var local net.Addr
	if src != "" {
		ip := net.ParseIP(src)
		if ip == nil {
			return nil, fmt.Errorf("probe: bad source %q", src)
		}
		switch proto {
		case "tcp":
			local = &net.TCPAddr{IP: ip}
		case "udp":
			local = &net.UDPAddr{IP: ip}
		}
	}
	if proto != "tcp" && proto != "udp" {
		return nil, fmt.Errorf("probe: protocol %q is not tcp or udp", proto)
	}
	var conn net.Conn
	err := ns.WithNetNSPath(path, func(ns.NetNS) error {
		d := net.Dialer{Deadline: deadline, LocalAddr: local}
		var err error
		conn, err = d.Dial(proto, net.JoinHostPort(toIP, strconv.Itoa(port)))
		return err
	})
	return conn, err
}
