package node

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// connIdle bounds how long an echo connection may stay idle.
const connIdle = 10 * time.Second

// Server is a set of TCP and UDP echo servers living in one namespace.
// The sockets are created on a thread locked into the namespace and keep it
// after the thread leaves; serving runs on ordinary goroutines.
type Server struct {
	mu      sync.Mutex
	closed  bool
	closers map[io.Closer]struct{}
	wg      sync.WaitGroup
}

// Serve starts, for every port, a TCP listener that echoes what it reads
// and a UDP server that echoes every datagram, bound to bindIP inside the
// namespace at netnsPath. An empty bindIP means all addresses of both
// families ([::]:port, which also accepts IPv4).
func Serve(netnsPath, bindIP string, ports ...int) (*Server, error) {
	s := &Server{closers: map[io.Closer]struct{}{}}
	var lns []net.Listener
	var pcs []net.PacketConn
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		for _, port := range ports {
			addr := net.JoinHostPort(bindIP, strconv.Itoa(port))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			lns = append(lns, ln)
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return err
			}
			pcs = append(pcs, pc)
		}
		return nil
	})
	for _, ln := range lns {
		s.add(ln)
	}
	for _, pc := range pcs {
		s.add(pc)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("serve %v on %q in %s: %w", ports, bindIP, netnsPath, err)
	}
	for _, ln := range lns {
		s.wg.Add(1)
		go s.acceptLoop(ln)
	}
	for _, pc := range pcs {
		s.wg.Add(1)
		go s.udpLoop(pc)
	}
	return s, nil
}

// Close stops all servers and closes open connections. It waits at most
// 5 s for the serving goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for c := range s.closers {
		c.Close()
	}
	s.closers = nil
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// add registers c for Close; it reports false (and closes c) when the
// server is already closed.
func (s *Server) add(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.closers[c] = struct{}{}
	return true
}

func (s *Server) remove(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.closers, c)
	c.Close()
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		if !s.add(conn) {
			return
		}
		s.wg.Add(1)
		go s.echo(conn)
	}
}

// echo copies a connection back to itself until EOF, error or idleness.
func (s *Server) echo(conn net.Conn) {
	defer s.wg.Done()
	defer s.remove(conn)
	buf := make([]byte, 4096)
	for {
		_ = conn.SetDeadline(time.Now().Add(connIdle))
		n, err := conn.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *Server) udpLoop(pc net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}
