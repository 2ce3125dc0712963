package agent

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state/cluster"
)

// RunOptions tune the long-running loop.
type RunOptions struct {
	Poll        time.Duration // how often the source is asked for changes
	RepairEvery time.Duration // how often the kernel is read back for drift
	// Debounce: after a source.Notifier's signal Run loads at once, then
	// gathers the signals of the next Debounce (default 20 ms) into one
	// load at its end, so that a burst of changes costs two syncs, and a
	// lone change waits for nothing.
	Debounce time.Duration
}

// Run syncs at start, then on every change of the source, and repairs the
// kernel when something else removed or changed our rules or sets. Invalid
// input is logged and the last good state kept. When the source is not ready
// at start, the stored snapshot is enforced until it is. At start and at
// every repair it checks that bridged traffic reaches iptables
// (CheckBridgeNF). It returns when ctx ends.
func (a *Agent) Run(ctx context.Context, src source.Source, opts RunOptions) error {
	if opts.Debounce <= 0 {
		opts.Debounce = 20 * time.Millisecond
	}
	l := &loop{a: a, src: src}
	if !a.WriteBehind {
		a.WriteBehind = true
		defer func() { a.WriteBehind = false }()
	}
	defer a.writer.flush()    // the last snapshot is stored when Run returns
	defer a.rz.writer.flush() // and the last versions in force
	defer a.ex.writer.flush() // and the rules CHECK compares
	a.status().Beat()
	a.CheckBridgeNF()
	l.load(ctx, true)
	poll := time.NewTicker(opts.Poll)
	defer poll.Stop()
	repair := time.NewTicker(opts.RepairEvery)
	defer repair.Stop()
	var notify <-chan struct{}
	if n, ok := src.(source.Notifier); ok {
		notify = n.Notify()
	}
	var debounce <-chan time.Time // a window after a load on a signal
	pending := false              // a signal arrived in that window
	var drift <-chan driftResult  // a read-back in flight
	for {
		a.status().Beat()
		select {
		case <-ctx.Done():
			return nil
		case <-notify:
			if debounce != nil {
				pending = true
				continue
			}
			l.loadIfChanged(ctx)
			debounce = time.After(opts.Debounce)
		case <-debounce:
			debounce = nil
			if pending {
				pending = false
				l.loadIfChanged(ctx)
				debounce = time.After(opts.Debounce)
			}
		case <-poll.C:
			l.loadIfChanged(ctx)
		case <-repair.C:
			a.CheckBridgeNF()
			if drift == nil {
				drift = l.startRepair(ctx)
			}
		case r := <-drift:
			drift = nil
			l.finishRepair(ctx, r)
		}
	}
}

// loop is the state of one Run: what the kernel was last synced to.
type loop struct {
	a    *Agent
	src  source.Source
	last *policy.Snapshot // what the kernel was last synced to
	live bool             // last came from the source, not the store
}

// load reads the source and syncs. At start, a source that is not ready
// makes the stored snapshot the one enforced.
func (l *loop) load(ctx context.Context, start bool) {
	snap, err := l.src.Load(ctx)
	switch {
	case errors.Is(err, source.ErrNotReady):
		if start {
			l.a.Log.Warn("source not ready; enforcing the stored snapshot until it is", "err", err)
			l.loadStored(ctx)
		} else {
			l.a.Log.Debug("source not ready", "err", err)
		}
		return
	case err != nil:
		l.a.status().Reject(err)
		l.a.Log.Error("invalid input; keeping the last good state", "err", err)
		if start && l.last == nil {
			// The last good state of a restarted agent is the stored one.
			l.loadStored(ctx)
		}
		return
	}
	l.fresh()
	l.a.NoteReceived(l.src)
	l.last, l.live = snap, true
	if l.a.sync(ctx, snap, "change", true) == nil {
		l.a.status().SetReady()
	}
}

// loadStored syncs the stored snapshot: after a restart with the API
// unreachable the node keeps enforcing the last view, and the index is
// rebuilt from the pods recorded since.
func (l *loop) loadStored(ctx context.Context) {
	mtime, _ := l.a.Store.SnapshotModTime()
	snap, err := cluster.ReadSnapshot(l.a.Store)
	if errors.Is(err, os.ErrNotExist) {
		l.a.Log.Warn("no stored snapshot: pods of namespaces with policies stay denied until the source is ready")
		return
	}
	if err != nil {
		l.a.Log.Error("stored snapshot unusable", "err", err)
		return
	}
	l.a.status().SetCurrentAsOf(mtime)
	l.last = snap
	_ = l.a.sync(ctx, snap, "stored", false)
}

// loadIfChanged loads when the source changed, or when nothing from the
// source has been synced yet.
func (l *loop) loadIfChanged(ctx context.Context) {
	changed, err := l.src.Changed(ctx)
	if err != nil {
		l.a.Log.Error("watch source", "err", err)
		return
	}
	if changed || !l.live {
		l.load(ctx, false)
		return
	}
	l.fresh()
}

// fresh records how current the source's view is.
func (l *loop) fresh() {
	t := time.Now()
	if f, ok := l.src.(source.Fresher); ok {
		t = f.CurrentAsOf()
	}
	l.a.status().SetCurrentAsOf(t)
}

// driftResult is what a read-back started by startRepair found.
type driftResult struct {
	snap    *policy.Snapshot // the snapshot it checked
	commits uint64           // Agent.commits when it started
	drift   []string
	err     error
}

// startRepair starts a read-back of the kernel against the last synced
// snapshot beside the loop, so that a change is synced while the kernel is
// read back (at 10,000 pods that takes a second); nil when there is
// nothing to check. The result arrives on the returned channel.
func (l *loop) startRepair(ctx context.Context) <-chan driftResult {
	if l.last == nil {
		return nil
	}
	out := make(chan driftResult, 1)
	r := driftResult{snap: l.last, commits: l.a.commits}
	check, err := l.a.prepareDrift(l.last)
	if err != nil {
		r.err = err
		out <- r
		return out
	}
	go func() {
		lowerPriority()
		r.drift, r.err = l.a.readKernel(ctx, check)
		out <- r
	}()
	return out
}

// finishRepair re-syncs when the read-back r found drift and nothing was
// committed while it ran: a sync that did would show its own change as a
// difference. Such a result is dropped and the next check looks again
// (the sync applied its change, and it rewrites everything when the
// kernel refuses it).
func (l *loop) finishRepair(ctx context.Context, r driftResult) {
	if r.err != nil {
		l.a.Log.Error("read back", "err", r.err)
		return
	}
	if len(r.drift) == 0 {
		return
	}
	if r.commits != l.a.commits || r.snap != l.last {
		l.a.Log.Debug("kernel changed by a sync during the read-back; checking again at the next repair",
			"differences", len(r.drift))
		return
	}
	l.a.Log.Warn("kernel drifted from the desired state; repairing", "differences", len(r.drift), "first", r.drift[0])
	l.a.Kernel.Forget()
	l.a.last = nil // rewrite everything, as compiled whole
	_ = l.a.sync(ctx, l.last, "repair", l.live)
}

// sync syncs snap; live says it is the source's current view (not the
// stored one), so that stale records may be removed.
func (a *Agent) sync(ctx context.Context, snap *policy.Snapshot, why string, live bool) error {
	res, err := a.syncWith(ctx, snap, live)
	if err != nil {
		a.Log.Error("sync failed; the previous rules stay in place", "why", why, "err", err)
		return err
	}
	a.Log.Info("synced", "why", why, "chains", res.Chains, "rules", res.Rules,
		"sets", res.Sets, "members", res.Members, "took", res.Took,
		"compile", res.Compile, "apply", res.Apply, "write", res.Write,
		"wait", res.Wait, "held", res.Held, "fast", res.Fast)
	return nil
}

// CheckBridgeNF reads br_netfilter's bridge-nf-call-iptables and
// -ip6tables in the agent's network namespace into Status, and logs a
// warning when one is (or turns) off (and when it is back on): with it off,
// traffic between pods of this node's bridge bypasses every policy.
func (a *Agent) CheckBridgeNF() {
	for _, f := range ipt.Families {
		why := ""
		if err := ipt.CheckBridgeNFCall(f); err != nil {
			why = err.Error()
		}
		was, known := a.status().SetBridgeNF(f, why)
		switch {
		case why != "" && (!known || was == ""):
			a.Log.Warn("bridged traffic bypasses policy", "family", f.String(), "sysctl", ipt.BridgeNFCallSysctl(f), "err", why)
		case why == "" && known && was != "":
			a.Log.Info("bridged traffic reaches iptables again", "family", f.String(), "sysctl", ipt.BridgeNFCallSysctl(f))
		}
	}
}
