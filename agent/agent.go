// Package agent is the node sidecar `netpol-agent`. It keeps the cluster
// snapshot (from a directory of manifests or the Kubernetes API), writes it where the plugin reads
// it, and makes the kernel match policy.Compile(snapshot, recorded pods) in
// one transaction per family, holding the data directory lock so that a
// concurrent CNI ADD or DEL is never lost.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/netpol/netpol/agent/health"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// Kernel is what the agent needs of the kernel edge (ipt.Runner).
type Kernel interface {
	// Apply makes the kernel hold rulesets; it removes the chains and sets
	// of ours that they no longer have.
	Apply(ctx context.Context, rulesets []ipt.Ruleset) error
	Diff(ctx context.Context, rs *ipt.Ruleset) ([]string, error)
	// Usable reports why the family's tables cannot be used (nil if they
	// can): ip6tables missing, or the kernel without IPv6 tables.
	Usable(ctx context.Context, f ipt.Family) error
	Uninstall(ctx context.Context) error
	// Forget makes the next Apply rewrite everything rather than what
	// changed since the last one: the kernel was changed behind our back.
	Forget()
}

// Agent syncs one node.
type Agent struct {
	Store  *state.Store
	Kernel Kernel
	Log    *slog.Logger
	// LockTimeout bounds the wait for the data directory lock.
	LockTimeout time.Duration
	// Status is kept up to date by Run (created by Run when nil).
	Status *health.Status
	// Observer, when set, hears of every Sync.
	Observer health.SyncObserver
	// DropObserver, when set, hears of every drop record RunDropLog writes.
	DropObserver health.DropObserver

	// ipv6Off: IPv6 rules are left out (apply, family.go). Read and
	// written under the data directory lock.
	ipv6Off bool
	// StaleGrace: Sync removes a pod record once it is this old if its pod
	// is not on this node in the snapshot and its network namespace is gone
	// (a DEL that never came); 0 keeps every record.
	StaleGrace time.Duration
	// Now and NetnsExists, when set, replace the clock and the check that a
	// network namespace path exists (tests).
	Now         func() time.Time
	NetnsExists func(path string) bool
	// DropLog, when set, is how the rules log drops (stored in the
	// snapshot, so that CHECK compiles the same); nil keeps the snapshot's,
	// policy.DefaultDropLog() when it has none.
	DropLog *policy.DropLog

	drops dropViews // for RunDropLog: the last sync's pods and groups
}

// Sync stores snap and makes the kernel match it plus the attachments CNI
// ADD recorded, all under the data directory lock. On error nothing of the
// previous snapshot, index or rules is lost: the snapshot and index are
// replaced only after the kernel accepted the new rules. snap must be the
// source's current view: records it shows stale are removed (StaleGrace).
func (a *Agent) Sync(ctx context.Context, snap *policy.Snapshot) (health.SyncResult, error) {
	return a.syncWith(ctx, snap, true)
}

// syncWith is Sync; reconcile false keeps every record (snap is the stored
// one, perhaps older than the records).
func (a *Agent) syncWith(ctx context.Context, snap *policy.Snapshot, reconcile bool) (health.SyncResult, error) {
	start := time.Now()
	res, err := a.syncLocked(ctx, snap, reconcile)
	if a.Observer != nil {
		obs := res
		obs.Took = time.Since(start)
		a.Observer.ObserveSync(obs, err)
	}
	return res, err
}

func (a *Agent) syncLocked(ctx context.Context, snap *policy.Snapshot, reconcile bool) (health.SyncResult, error) {
	start := time.Now()
	unlock, err := a.Store.Lock(ctx, a.LockTimeout)
	if err != nil {
		return health.SyncResult{}, err
	}
	defer unlock()
	// Under the lock, a temp file is what a killed agent or plugin left.
	if err := a.Store.RemoveTemps(); err != nil {
		a.Log.Warn("remove leftover temp files", "err", err)
	}
	atts, err := a.attachments()
	if err != nil {
		return health.SyncResult{}, err
	}
	if reconcile {
		atts = a.removeStale(snap, atts)
	}
	var res health.SyncResult
	phase := time.Now()
	snap = a.withDropLog(snap)
	compiled, err := policy.Compile(snap, atts)
	if err != nil {
		return health.SyncResult{}, err
	}
	res.Compile, phase = time.Since(phase), time.Now()
	if err := a.writeTransitionIndex(&compiled.Index); err != nil {
		return health.SyncResult{}, err
	}
	if res.Disabled, err = a.apply(ctx, compiled.Rulesets, atts); err != nil {
		return health.SyncResult{}, fmt.Errorf("apply: %w", err)
	}
	res.Apply, phase = time.Since(phase), time.Now()
	if err := errors.Join(a.Store.WriteSnapshot(snap), a.Store.WriteIndex(&compiled.Index)); err != nil {
		return health.SyncResult{}, err
	}
	res.Write = time.Since(phase)
	a.drops.update(snap, atts, compiled.Groups)
	sum := summarize(compiled, res.Disabled)
	res.Chains, res.Rules, res.Sets, res.Members = sum.Chains, sum.Rules, sum.Sets, sum.Members
	res.Took = time.Since(start)
	return res, nil
}

// writeTransitionIndex stores transitionIndex(stored index, next) before
// the kernel changes, so that a sync dying half-way leaves no index that
// lags the rules. Nothing is written when the stored index is next already,
// when there is none (first sync: the plugin fails closed without one), or
// when it cannot be read (the plugin fails on it too).
func (a *Agent) writeTransitionIndex(next *policy.Index) error {
	prev, err := a.Store.ReadIndex()
	if err != nil {
		return nil
	}
	if bytes.Equal(state.EncodeIndex(prev), state.EncodeIndex(next)) {
		return nil
	}
	if err := a.Store.WriteIndex(transitionIndex(prev, next)); err != nil {
		return fmt.Errorf("write transition index: %w", err)
	}
	return nil
}

func summarize(c *policy.Compiled, disabled []ipt.Family) health.SyncResult {
	var r health.SyncResult
	for _, rs := range c.Rulesets {
		if slices.Contains(disabled, rs.Family) {
			continue
		}
		r.Chains += len(rs.Chains)
		for _, ch := range rs.Chains {
			r.Rules += len(ch.Rules)
		}
		r.Sets += len(rs.Sets)
		for _, s := range rs.Sets {
			r.Members += len(s.Members)
		}
	}
	return r
}

// Drift compares the kernel with what snap (the snapshot last synced, held
// by the run loop: no need to decode snapshot.json again) and the pod
// records call for, and returns the differences (empty when the kernel is
// as desired).
func (a *Agent) Drift(ctx context.Context, snap *policy.Snapshot) ([]string, error) {
	unlock, err := a.Store.Lock(ctx, a.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer unlock()
	atts, err := a.attachments()
	if err != nil {
		return nil, err
	}
	compiled, err := policy.Compile(a.withDropLog(snap), atts)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := range compiled.Rulesets {
		if a.ipv6Off && compiled.Rulesets[i].Family == ipt.IPv6 {
			continue
		}
		d, err := a.Kernel.Diff(ctx, &compiled.Rulesets[i])
		if err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	return out, nil
}

// attachments loads the pod records; each one found unusable has been
// moved aside by the store, and is logged and counted here. Its pod is
// unknown from then on: its addresses are in no set, not even DENY (nothing
// says what they are), so the pod is isolated by no policy and matches no
// peer until it is added again; every other pod is unaffected.
func (a *Agent) attachments() ([]policy.Attachment, error) {
	atts, bad, err := a.Store.Attachments()
	for _, q := range bad {
		a.Log.Warn("pod record unusable: moved aside; its pod is unknown to netpol until it is added again",
			"file", q.File, "err", q.Err)
	}
	a.status().Quarantine(len(bad))
	if err != nil {
		return nil, fmt.Errorf("read pod records: %w", err)
	}
	return atts, nil
}

// Uninstall removes every chain, rule and set of ours and empties the data
// directory. Running it again succeeds.
func (a *Agent) Uninstall(ctx context.Context) error {
	unlock, err := a.Store.Lock(ctx, a.LockTimeout)
	if err != nil {
		return err
	}
	defer unlock()
	if err := a.Kernel.Uninstall(ctx); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	return a.Store.RemoveAll()
}

// withDropLog returns snap with the agent's DropLog (a copy; snap is the
// source's).
func (a *Agent) withDropLog(snap *policy.Snapshot) *policy.Snapshot {
	if a.DropLog == nil {
		return snap
	}
	s := *snap
	dl := *a.DropLog
	s.DropLog = &dl
	return &s
}

// status returns the agent's Status, creating it when the caller set none.
func (a *Agent) status() *health.Status {
	if a.Status == nil {
		a.Status = &health.Status{}
	}
	return a.Status
}
