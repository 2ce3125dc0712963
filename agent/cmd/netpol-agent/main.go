// Command netpol-agent is the node sidecar; see package agent.
//
//	netpol-agent --manifests DIR --data-dir D [--once] [--node-name N]
//	netpol-agent [--kubeconfig FILE] --data-dir D [--once] [--node-name N] [--metrics-addr ADDR] [--stale-record-grace 2m]
//	netpol-agent --uninstall --data-dir D
//	netpol-agent explain --data-dir D --from NS/POD --to NS/POD|IP [--protocol TCP] --port P
//	netpol-agent explain --live ... (the rules and sets in the kernel now)
//	netpol-agent status --data-dir D
//	netpol-agent wait --data-dir D --policy NS/NAME [--version V] --timeout T
//	netpol-agent drops --data-dir D [--follow] [--pod NS/POD]
//	netpol-agent install-cni --cni-conf-dir D --cni-bin-dir D [--plugin FILE]
//	netpol-agent uninstall-cni --cni-conf-dir D
//
// Without --manifests the source is the Kubernetes API: --kubeconfig FILE,
// or the in-cluster configuration when running in a pod.
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
	"github.com/netpol/netpol/agent/health"
	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

func main() { os.Exit(run(os.Args[1:])) }

// explain implements `netpol-agent explain --data-dir D --from A --to B
// [--protocol TCP] --port P [--live]`. Exit status: 0 allowed, 1 denied, 2
// error (with --live, also: the kernel disagrees with the snapshot).
func explain(args []string) int {
	fs := flag.NewFlagSet("netpol-agent explain", flag.ContinueOnError)
	dataDir := fs.String("data-dir", conf.DefaultDataDir, "data directory shared with the CNI plugin")
	from := fs.String("from", "", "source: namespace/name of a pod (each of its families), or an IPv4 or IPv6 address")
	to := fs.String("to", "", "destination: namespace/name of a pod (each of its families), or an IPv4 or IPv6 address")
	proto := fs.String("protocol", "TCP", "TCP, UDP or SCTP")
	port := fs.Int("port", 0, "destination port")
	live := fs.Bool("live", false, "also trace through the rules and sets in the kernel now (read back), and fail when they disagree with the snapshot")
	mode := fs.String("iptables-mode", "auto", "with --live: iptables backend, auto, nft or legacy")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from == "" || *to == "" || *port < 1 || *port > 65535 {
		fmt.Fprintln(os.Stderr, "netpol-agent explain: --from, --to and --port (1-65535) are required")
		return 2
	}
	a := &agent.Agent{Store: state.New(*dataDir)}
	q := agent.ExplainQuery{From: *from, To: *to, Protocol: corev1.Protocol(strings.ToUpper(*proto)), Port: int32(*port)}
	if *live {
		runner, err := ipt.NewRunner(ipt.Mode(*mode))
		if err != nil {
			fmt.Fprintln(os.Stderr, "netpol-agent explain:", err)
			return 2
		}
		q.Live = func(f ipt.Family) (*ipt.Ruleset, error) { return runner.ReadLive(context.Background(), f) }
	}
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
	kubeconfig, metricsAddr        string
	cniConfDir                     string
	once, uninstall, audit         bool
	poll, repair, debounce         time.Duration
	staleGrace                     time.Duration
	apiTimeout                     time.Duration
	inCluster                      bool // the API source with the in-cluster config
	drops                          dropOptions
}

// api reports whether the source is the Kubernetes API.
func (o *options) api() bool { return o.manifests == "" }

// defaultMetricsAddr is where the long-running agent on the API source
// serves /metrics, /healthz and /readyz unless --metrics-addr says: the
// node's loopback, since the agent runs with the node's network and would
// otherwise listen on every address of the node.
const defaultMetricsAddr = "127.0.0.1:9101"

// flagSet declares the agent's flags (not the subcommands'), bound to o.
func flagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("netpol-agent", flag.ContinueOnError)
	fs.StringVar(&o.manifests, "manifests", "", "directory of Namespace, Pod and NetworkPolicy manifests (*.yaml, *.yml, *.json)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the Kubernetes API to watch (default: the in-cluster config, in a pod)")
	fs.StringVar(&o.dataDir, "data-dir", conf.DefaultDataDir, "data directory shared with the CNI plugin")
	fs.StringVar(&o.node, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&o.mode, "iptables-mode", "auto", "iptables backend: auto, nft or legacy")
	fs.BoolVar(&o.once, "once", false, "sync once and exit")
	fs.BoolVar(&o.audit, "audit", false, "audit every policy of this node: evaluate as enforcement would, but let what it would drop pass (logged as would-deny)")
	fs.BoolVar(&o.uninstall, "uninstall", false, "remove every chain, rule, set and state file of netpol and exit")
	fs.DurationVar(&o.poll, "poll", 200*time.Millisecond, "how often the source is checked for changes (the API source and a manifest directory inotify can watch also push them; a watched directory's files are then compared once a second)")
	fs.DurationVar(&o.repair, "repair-interval", 5*time.Second, "how often the kernel is read back and repaired")
	fs.DurationVar(&o.staleGrace, "stale-record-grace", 2*time.Minute,
		"remove a pod record this old whose pod the source no longer places on this node and whose network namespace is gone (a lost DEL); 0 keeps every record")
	fs.DurationVar(&o.debounce, "debounce", 20*time.Millisecond, "after a change the source pushed (the API; a watched manifest directory) is synced, how long to gather the next ones into one sync")
	fs.DurationVar(&o.apiTimeout, "api-timeout", 10*time.Second,
		"API source: how long to wait for the first complete list before enforcing the stored snapshot (with --once: before failing)")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "",
		`serve /metrics, /healthz and /readyz on this host:port (default `+defaultMetricsAddr+` for the long-running agent on the API source; "off" disables)`)
	fs.StringVar(&o.cniConfDir, "cni-conf-dir", "",
		"API source: keep netpol chained into the runtime's CNI configuration in this directory (see install-cni), re-chaining it within --repair-interval when its owner rewrites it")
	addDropFlags(fs, &o.drops)
	return fs
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flagSet(o)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.uninstall {
		return o, nil
	}
	switch {
	case o.manifests != "" && o.kubeconfig != "":
		return nil, errors.New("--manifests and --kubeconfig exclude each other")
	case o.manifests == "" && o.kubeconfig == "":
		if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
			return nil, errors.New("--manifests or --kubeconfig is required outside a pod (or --uninstall)")
		}
		o.inCluster = true
	}
	if o.api() && o.node == "" {
		return nil, errors.New("the API source needs this node's name: --node-name or $NODE_NAME")
	}
	if o.metricsAddr == "" && o.api() && !o.once {
		o.metricsAddr = defaultMetricsAddr
	}
	if o.metricsAddr == "off" {
		o.metricsAddr = ""
	}
	return o, nil
}

// subcommand finds the subcommand among args: the first argument that is
// neither a flag nor a flag's value, if it names one. Its flags may come
// before or after it; rest is args without it. A flag's value that happens
// to be a subcommand's name (--manifests explain) is not taken for one.
func subcommand(args []string) (name string, rest []string) {
	bools := map[string]bool{}
	flagSet(&options{}).VisitAll(func(f *flag.Flag) {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			bools[f.Name] = true
		}
	})
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return "", args
		case a == "-" || !strings.HasPrefix(a, "-"):
			switch a {
			case "explain", "install-cni", "uninstall-cni", "drops", "status", "wait":
				return a, append(append([]string{}, args[:i]...), args[i+1:]...)
			}
			return "", args
		case strings.Contains(a, "="), bools[strings.TrimLeft(a, "-")]:
			// the flag carries its value, or takes none
		default:
			i++ // the flag's value; subcommands have no bool flags
		}
	}
	return "", args
}

func run(args []string) int {
	switch cmd, rest := subcommand(args); cmd {
	case "explain":
		return explain(rest)
	case "install-cni":
		return installCNI(rest)
	case "uninstall-cni":
		return uninstallCNI(rest)
	case "status":
		return status(rest, os.Stdout, os.Stderr)
	case "wait":
		return wait(rest, os.Stdout, os.Stderr)
	case "drops":
		return drops(rest, os.Stdout)
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
	dropLog, err := o.drops.policy()
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent:", err)
		return 2
	}
	a := &agent.Agent{Store: state.New(o.dataDir), Kernel: runner, Log: log, LockTimeout: time.Minute, Status: &health.Status{},
		StaleGrace: o.staleGrace, DropLog: dropLog, Audit: o.audit}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch {
	case o.uninstall:
		if err := a.Uninstall(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "netpol-agent:", err)
			return 1
		}
		return 0
	case o.api():
		return runAPI(ctx, a, o, log)
	case o.once:
		return manifestsOnce(ctx, a, o, log)
	default:
		src := &source.DirSource{Dir: o.manifests, Node: o.node, Store: a.Store}
		defer src.Close()
		if o.metricsAddr != "" {
			if err := serveOps(ctx, a, o.metricsAddr, nil, log); err != nil {
				fmt.Fprintln(os.Stderr, "netpol-agent:", err)
				return 1
			}
		}
		startDropLog(ctx, a, &o.drops, log)
		if err := a.Run(ctx, src, agent.RunOptions{Poll: o.poll, RepairEvery: o.repair, Debounce: o.debounce}); err != nil {
			fmt.Fprintln(os.Stderr, "netpol-agent:", err)
			return 1
		}
		log.Info("stopped")
		return 0
	}
}

// syncOnce syncs snap and logs the result (--once).
func syncOnce(ctx context.Context, a *agent.Agent, snap *policy.Snapshot, log *slog.Logger) int {
	res, err := a.Sync(ctx, snap)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent:", err)
		return 1
	}
	log.Info("synced", "chains", res.Chains, "rules", res.Rules, "sets", res.Sets, "members", res.Members, "took", res.Took,
		"compile", res.Compile, "apply", res.Apply, "write", res.Write, "in_force", res.InForce)
	return 0
}
