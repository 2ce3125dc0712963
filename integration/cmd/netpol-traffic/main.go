// Command netpol-traffic generates the traffic of `make perf` inside pod
// network namespaces: a sink that accepts TCP connections and discards
// what they send, a connector that opens and resets connections one after
// another, and a bulk sender. It runs as its own process (started with
// `ip netns exec POD netpol-traffic ...`) so that the benchmark's own
// goroutines and garbage collector stay out of the measured loop.
//
//	netpol-traffic serve -port 5201
//	netpol-traffic connect -to 10.244.1.3:5201 -for 1s
//	netpol-traffic send -to 10.244.1.3:5201 -for 1s
//
// serve prints "listening" once it accepts connections. connect prints
// "connects N seconds S" (each connection: a full handshake, then an RST
// from the connector, SO_LINGER 0, so no TIME_WAIT builds up); send prints
// "bytes N seconds S" (one connection, 256 KiB writes for the duration,
// then a half-close and the sink's close: every byte counted was received).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: netpol-traffic serve|connect|send [flags]")
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	port := fs.Int("port", 5201, "serve: TCP port to listen on")
	to := fs.String("to", "", "connect, send: address:port of the sink")
	dur := fs.Duration("for", time.Second, "connect, send: how long to run")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(*port)
	case "connect":
		err = connect(*to, *dur)
	case "send":
		err = send(*to, *dur)
	default:
		err = fmt.Errorf("unknown mode %q (want serve, connect or send)", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-traffic:", err)
		return 1
	}
	return 0
}

// serve accepts connections until killed; each is read to its end (EOF or
// reset) and closed.
func serve(port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			_, _ = io.Copy(io.Discard, c)
			_ = c.Close()
		}()
	}
}

// connect opens connections to addr one at a time for d and resets each
// as soon as the handshake completes.
func connect(addr string, d time.Duration) error {
	if addr == "" {
		return errors.New("connect: -to is required")
	}
	dialer := net.Dialer{Timeout: time.Second}
	n := 0
	start := time.Now()
	end := start.Add(d)
	for time.Now().Before(end) {
		c, err := dialer.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("connect %s after %d connections: %w", addr, n, err)
		}
		if err := c.(*net.TCPConn).SetLinger(0); err != nil {
			return err
		}
		_ = c.Close()
		n++
	}
	fmt.Printf("connects %d seconds %.6f\n", n, time.Since(start).Seconds())
	return nil
}

// send writes to one connection for d, half-closes it and waits for the
// sink to close its end: the time counts until the last byte was read.
func send(addr string, d time.Duration) error {
	if addr == "" {
		return errors.New("send: -to is required")
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	var n int64
	start := time.Now()
	end := start.Add(d)
	for time.Now().Before(end) {
		w, err := c.Write(buf)
		n += int64(w)
		if err != nil {
			return fmt.Errorf("send %s after %d bytes: %w", addr, n, err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("send %s: waiting for the sink to close: %w", addr, err)
	}
	fmt.Printf("bytes %d seconds %.6f\n", n, time.Since(start).Seconds())
	return nil
}
