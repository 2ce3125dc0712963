package integration

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/state"
)

// BenchmarkManifestChange is a running manifest agent's path from an
// edited file to the kernel, in process (so that -cpuprofile sees it): on
// make perf's large world, one pod label edit (row 6a) or one policy edit
// (row 6b) renamed into the directory, then the source's Changed and Load
// and Agent.Sync, as Run does on its poll. It prints each kind's
// min/median/max of the load, the sync and both, 20 of each, and the time
// of five drift checks (Agent.Drift: the repair loop's read-back). No
// baseline: it is the profile's workload (go test -cpuprofile); make perf
// rows 6a/6b time the same path in the real binary against the small world.
func BenchmarkManifestChange(b *testing.B) {
	bnRequireRoot(b)
	const changes = 20
	n := node.New(b, node.Options{Name: bnNodeName})
	m := pfWriteManifests(b, pfLarge())
	st := state.New(n.DataDir)
	for _, a := range m.c.Attachments(len(m.c.LocalPods())) {
		if err := st.WriteAttachment(&a); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	var load, sync [2][]time.Duration
	var drift []time.Duration
	trace := &bnTrace{}
	var phases [2][][3]time.Duration // compile, apply, write
	cmds := [2]map[string][]time.Duration{{}, {}}
	err := ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error {
		a := &agent.Agent{Store: st, Kernel: &ipt.Runner{Timeout: time.Minute, Trace: trace.add}, Log: slog.New(slog.DiscardHandler),
			LockTimeout: time.Minute}
		src := &source.DirSource{Dir: m.dir, Node: bnNodeName, Store: st}
		step := func(k int) error {
			start := time.Now()
			if changed, err := src.Changed(ctx); err != nil || !changed {
				return fmt.Errorf("changed %v: %v", changed, err)
			}
			snap, err := src.Load(ctx)
			if err != nil {
				return err
			}
			loaded := time.Now()
			res, err := a.Sync(ctx, snap)
			if err != nil {
				return err
			}
			took := trace.reset()
			if k >= 0 {
				phases[k] = append(phases[k], [3]time.Duration{res.Compile, res.Apply, res.Write})
				load[k] = append(load[k], loaded.Sub(start))
				sync[k] = append(sync[k], time.Since(loaded))
				for c, d := range took {
					cmds[k][c] = append(cmds[k][c], d)
				}
			}
			return nil
		}
		if err := m.toggleLabel(); err != nil {
			return err
		}
		if err := step(-1); err != nil {
			return err
		}
		b.ResetTimer()
		for range changes {
			for k, edit := range []func() error{m.toggleLabel, m.togglePolicy} {
				if err := edit(); err != nil {
					return err
				}
				if err := step(k); err != nil {
					return err
				}
			}
		}
		snap, err := src.Load(ctx)
		if err != nil {
			return err
		}
		for range 5 {
			start := time.Now()
			if _, err := a.Drift(ctx, snap); err != nil {
				return err
			}
			drift = append(drift, time.Since(start))
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var log bnLog
	log.add("drift check %s", bnSpread(drift))
	for k, name := range []string{"label", "policy"} {
		var both []time.Duration
		for i := range load[k] {
			both = append(both, load[k][i]+sync[k][i])
		}
		log.add("%-7s load %s  sync %s  both %s (ms, min/median/max of %d)", name, bnSpread(load[k]), bnSpread(sync[k]), bnSpread(both), len(both))
		for j, ph := range []string{"compile", "apply", "write"} {
			var ds []time.Duration
			for _, p := range phases[k] {
				ds = append(ds, p[j])
			}
			log.add("%-7s   %-24s       %s", "", ph, bnSpread(ds))
		}
		for _, c := range slices.Sorted(maps.Keys(cmds[k])) {
			log.add("%-7s   %-24s %3d×  %s", "", c, len(cmds[k][c]), bnSpread(cmds[k][c]))
		}
	}
	bnReport(b, "manifest-change", log)
}
