// Command netpol-image builds the images of the real-node tests as
// archives that `ctr -n k8s.io images import` loads, with no registry and
// no docker (package image):
//
//	netpol-pause.tar  localhost/netpol-pause:1 (the pod sandbox image)
//	netpol.tar        netpol:latest (plugin, agent, iptables, ipset)
//	agnhost.tar       registry.k8s.io/e2e-test-images/agnhost:2.66.1
//
// Usage: netpol-image [-out DIR] [-agnhost BIN] [pause|netpol|agnhost...]
// (default: all three). It prints the path of each archive it wrote.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/netpol/netpol/integration/cluster/image"
)

func main() { os.Exit(run()) }

func run() int {
	out := flag.String("out", ".cache/images", "directory for archives, rootfs trees and downloaded .debs")
	agnhost := flag.String("agnhost", "", "prebuilt static agnhost binary (default: build it)")
	flag.Parse()
	which := flag.Args()
	if len(which) == 0 {
		which = []string{"pause", "netpol", "agnhost"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b := &image.Builder{Cache: *out, Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
	for _, w := range which {
		start := time.Now()
		var path string
		var err error
		switch w {
		case "pause":
			path, err = b.Pause(ctx)
		case "netpol":
			path, err = b.Netpol(ctx)
		case "agnhost":
			path, err = b.Agnhost(ctx, *agnhost)
		default:
			err = fmt.Errorf("unknown image %q (want pause, netpol or agnhost)", w)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "netpol-image: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "netpol-image: %s in %.1fs\n", w, time.Since(start).Seconds())
		fmt.Println(path)
	}
	return 0
}
