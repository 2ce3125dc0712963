// Command netpol-agent is the node sidecar; see package agent.
//
//	netpol-agent --manifests DIR --data-dir D [--once] [--node-name N]
//	netpol-agent --uninstall --data-dir D
//	netpol-agent explain --data-dir D --from NS/POD --to NS/POD|IP [--protocol TCP] --port P
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/agent/store"
	"github.com/netpol/netpol/ipt"
)

func main() { os.Exit(run(os.Args[1:])) }

// explain implements `netpol-agent explain --data-dir D --from A --to B
// [--protocol TCP] --port P`. Exit status: 0 allowed, 1 denied, 2 error.
func explain(args []string) int {
	fs := flag.NewFlagSet("netpol-agent explain", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "/var/lib/netpol", "data directory shared with the CNI plugin")
	from := fs.String("from", "", "source: namespace/name of a pod, or an IP address")
	to := fs.String("to", "", "destination: namespace/name of a pod, or an IP address")
	proto := fs.String("protocol", "TCP", "TCP, UDP or SCTP")
	port := fs.Int("port", 0, "destination port")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from == "" || *to == "" || *port < 1 || *port > 65535 {
		fmt.Fprintln(os.Stderr, "netpol-agent explain: --from, --to and --port (1-65535) are required")
		return 2
	}
	a := &agent.Agent{Store: store.New(*dataDir)}
	q := agent.ExplainQuery{From: *from, To: *to, Protocol: corev1.Protocol(strings.ToUpper(*proto)), Port: int32(*port)}
	allowed, err := a.Explain(q, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent explain:", err)
		return 2
	}
	if !allowed {
		return 1
	}
	return 0
}

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
	for i, a := range args {
		if a == "explain" { // a subcommand; its flags may come before or after it
			return explain(append(append([]string{}, args[:i]...), args[i+1:]...))
		}
	}
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
