// Command netpol-agent is the node sidecar; see package agent.
//
//	netpol-agent --manifests DIR --data-dir D [--once] [--node-name N]
//	netpol-agent --uninstall --data-dir D
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/agent/store"
	"github.com/netpol/netpol/ipt"
)

func main() { os.Exit(run(os.Args[1:])) }

type options struct {
	manifests, dataDir, node, mode string
	once, uninstall                bool
	poll, repair                   time.Duration
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("netpol-agent", flag.ContinueOnError)
	fs.StringVar(&o.manifests, "manifests", "", "directory of Namespace, Pod and NetworkPolicy manifests (*.yaml, *.yml, *.json)")
	fs.StringVar(&o.dataDir, "data-dir", "/var/lib/netpol", "data directory shared with the CNI plugin")
	fs.StringVar(&o.node, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&o.mode, "iptables-mode", "auto", "iptables backend: auto, nft or legacy")
	fs.BoolVar(&o.once, "once", false, "sync once and exit")
	fs.BoolVar(&o.uninstall, "uninstall", false, "remove every chain, rule, set and state file of netpol and exit")
	fs.DurationVar(&o.poll, "poll", 200*time.Millisecond, "how often the manifest directory is checked for changes")
	fs.DurationVar(&o.repair, "repair-interval", 5*time.Second, "how often the kernel is read back and repaired")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !o.uninstall && o.manifests == "" {
		return nil, errors.New("--manifests is required (or --uninstall)")
	}
	return o, nil
}

func run(args []string) int {
	o, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	runner, err := ipt.NewRunner(ipt.Mode(o.mode))
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent:", err)
		return 1
	}
	a := &agent.Agent{Store: store.New(o.dataDir), Kernel: runner, Log: log, LockTimeout: time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch {
	case o.uninstall:
		if err := a.Uninstall(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "netpol-agent:", err)
			return 1
		}
		return 0
	case o.once:
		src := &agent.DirSource{Dir: o.manifests, Node: o.node}
		snap, err := src.Load(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "netpol-agent: invalid input:", err)
			return 1
		}
		res, err := a.Sync(ctx, snap)
		if err != nil {
			fmt.Fprintln(os.Stderr, "netpol-agent:", err)
			return 1
		}
		log.Info("synced", "chains", res.Chains, "rules", res.Rules, "sets", res.Sets, "members", res.Members, "took", res.Took)
		return 0
	default:
		src := &agent.DirSource{Dir: o.manifests, Node: o.node}
		if err := a.Run(ctx, src, agent.RunOptions{Poll: o.poll, RepairEvery: o.repair}); err != nil {
			fmt.Fprintln(os.Stderr, "netpol-agent:", err)
			return 1
		}
		log.Info("stopped")
		return 0
	}
}
