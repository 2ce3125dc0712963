package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"k8s.io/klog/v2"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/agent/cniconf"
	"github.com/netpol/netpol/agent/kube"
	"github.com/netpol/netpol/agent/ops"
	"github.com/netpol/netpol/agent/source"
)

// runAPI runs the agent on the Kubernetes API source: once (list, sync,
// exit) or until ctx ends.
func runAPI(ctx context.Context, a *agent.Agent, o *options, log *slog.Logger) int {
	klog.SetSlogLogger(log) // client-go logs through klog: make it structured too
	cfg, err := kube.RESTConfig(o.kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent:", err)
		return 1
	}
	src, err := kube.New(cfg, kube.Options{Node: o.node, SyncTimeout: o.apiTimeout, FailFast: !o.once, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src.Start(ctx)
	if o.once {
		snap, err := src.Load(ctx)
		if errors.Is(err, source.ErrNotReady) {
			fmt.Fprintf(os.Stderr, "netpol-agent: could not list namespaces, pods and networkpolicies within %s: %v\n", o.apiTimeout, err)
			return 1
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "netpol-agent: invalid input:", err)
			return 1
		}
		a.NoteReceived(src)
		return syncOnce(ctx, a, snap, log)
	}
	if o.metricsAddr != "" {
		if err := serveOps(ctx, a, o.metricsAddr, src.Skipped, log); err != nil {
			fmt.Fprintln(os.Stderr, "netpol-agent:", err)
			return 1
		}
	}
	if o.cniConfDir != "" {
		go keepChained(ctx, o, log)
	}
	startDropLog(ctx, a, &o.drops, log)
	log.Info("watching the Kubernetes API", "host", cfg.Host, "node", o.node)
	if err := a.Run(ctx, src, agent.RunOptions{Poll: o.poll, RepairEvery: o.repair, Debounce: o.debounce}); err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent:", err)
		return 1
	}
	cancel()
	src.Shutdown()
	log.Info("stopped")
	return 0
}

// keepChained re-chains netpol into the CNI configuration whenever its
// owner rewrote it (flannel does when its pod restarts), every repair
// interval, until ctx ends.
func keepChained(ctx context.Context, o *options, log *slog.Logger) {
	tick := time.NewTicker(o.repair)
	defer tick.Stop()
	for {
		res, err := cniconf.Install(cniconf.Options{ConfDir: o.cniConfDir, Entry: cniconf.Entry(o.dataDir, o.mode)})
		switch {
		case err != nil:
			log.Error("keeping netpol chained into the CNI configuration", "dir", o.cniConfDir, "err", err)
		case res.Changed:
			log.Warn("netpol was not chained into the CNI configuration; chained it again", "file", res.File)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// serveOps starts the metrics and health endpoint and makes the agent
// report its syncs to it.
func serveOps(ctx context.Context, a *agent.Agent, addr string, skipped func() int, log *slog.Logger) error {
	m := ops.NewMetrics(ops.Sources{Status: a.Status, Skipped: skipped})
	a.Observer = m
	a.DropObserver = m
	// A sync waits at most a minute for the lock, then one restore: a loop
	// that did not go round in 3 minutes is stuck.
	_, err := ops.Serve(ctx, addr, ops.Handler(m, a.Status, 3*time.Minute), log)
	return err
}
