// Command etcd is a single-member etcd server (go.etcd.io/etcd/server/v3,
// embedded) for the cluster tests' kube-apiserver: plain HTTP on the node
// namespace's loopback, data in a directory the test owns, no fsync (the
// data lives as long as one test).
//
//	etcd DATA_DIR CLIENT_URL PEER_URL
package main

import (
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: etcd DATA_DIR CLIENT_URL PEER_URL")
		return 2
	}
	client, err := url.Parse(args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: client url %q: %v\n", args[1], err)
		return 2
	}
	peer, err := url.Parse(args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: peer url %q: %v\n", args[2], err)
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name = "default"
	cfg.Dir = args[0]
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "warn"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: start: %v\n", err)
		return 1
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintln(os.Stderr, "etcd: ready on", client)
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		return 1
	case <-sig:
		return 0
	}
	select {
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		return 1
	case <-sig:
		return 0
	}
}
