package apiserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// proxy makes the API server reachable from inside a node namespace: it
// listens on 127.0.0.1 of the node namespace (the socket is created on a
// thread locked into it, and stays there) and copies every connection to
// the API server on the test's own 127.0.0.1. Bytes pass untouched (TLS is
// end to end); nothing listens beyond loopback. Closing it is the API
// "going away" as the node sees it: connections are cut and new ones
// refused, until Reopen on the same port.
type proxy struct {
	netnsPath, target string
	Addr              string // 127.0.0.1:PORT inside the node namespace

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
}

func startProxy(netnsPath, target string) (*proxy, error) {
	p := &proxy{netnsPath: netnsPath, target: target, conns: map[net.Conn]struct{}{}}
	if err := p.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *proxy) listen(addr string) error {
	var ln net.Listener
	err := ns.WithNetNSPath(p.netnsPath, func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return fmt.Errorf("proxy listen %s in %s: %w", addr, p.netnsPath, err)
	}
	p.mu.Lock()
	p.ln, p.Addr, p.closed = ln, ln.Addr().String(), false
	p.mu.Unlock()
	go p.accept(ln)
	return nil
}

func (p *proxy) accept(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(in)
	}
}

// pipe copies one connection both ways until either side closes.
func (p *proxy) pipe(in net.Conn) {
	out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		in.Close()
		return
	}
	if !p.track(in, out) {
		in.Close()
		out.Close()
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	<-done
	in.Close()
	out.Close()
	<-done
	p.untrack(in, out)
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// Close stops listening and cuts every connection.
func (p *proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
}

// Reopen listens again on the same address.
func (p *proxy) Reopen() error { return p.listen(p.Addr) }

// httpGetIn does GET url from inside the namespace at netnsPath and
// returns the status code and body.
func httpGetIn(netnsPath, url string) (int, string, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
				var err error
				c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(body), nil
}
