package agent

import (
	"context"
	"time"

	"github.com/netpol/netpol/policy"
)

// Source yields snapshots: a directory of manifests, or the Kubernetes API.
type Source interface {
	// Load returns the current snapshot, or an error naming what is invalid.
	Load(ctx context.Context) (*policy.Snapshot, error)
	// Changed reports whether Load would return something new since the
	// last Load (it may report true spuriously, never false wrongly).
	Changed(ctx context.Context) (bool, error)
}

// RunOptions tune the long-running loop.
type RunOptions struct {
	Poll        time.Duration // how often the source is asked for changes
	RepairEvery time.Duration // how often the kernel is read back for drift
}

// Run syncs at start, then on every change of the source, and repairs the
// kernel when something else removed or changed our rules or sets. Invalid
// input is logged and the last good state kept. It returns when ctx ends.
func (a *Agent) Run(ctx context.Context, src Source, opts RunOptions) error {
	var last *policy.Snapshot
	load := func() {
		snap, err := src.Load(ctx)
		if err != nil {
			a.Log.Error("invalid input; keeping the last good state", "err", err)
			return
		}
		last = snap
		a.sync(ctx, snap, "change")
	}
	load()
	poll := time.NewTicker(opts.Poll)
	defer poll.Stop()
	repair := time.NewTicker(opts.RepairEvery)
	defer repair.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			changed, err := src.Changed(ctx)
			if err != nil {
				a.Log.Error("watch source", "err", err)
				continue
			}
			if changed || last == nil {
				load()
			}
		case <-repair.C:
			if last == nil {
				continue
			}
			drift, err := a.Drift(ctx)
			if err != nil {
				a.Log.Error("read back", "err", err)
				continue
			}
			if len(drift) > 0 {
				a.Log.Warn("kernel drifted from the desired state; repairing", "differences", len(drift), "first", drift[0])
				a.sync(ctx, last, "repair")
			}
		}
	}
}

func (a *Agent) sync(ctx context.Context, snap *policy.Snapshot, why string) {
	res, err := a.Sync(ctx, snap)
	if err != nil {
		a.Log.Error("sync failed; the previous rules stay in place", "why", why, "err", err)
		return
	}
	a.Log.Info("synced", "why", why, "chains", res.Chains, "rules", res.Rules,
		"sets", res.Sets, "members", res.Members, "took", res.Took)
}
