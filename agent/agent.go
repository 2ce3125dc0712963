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
	"os"
	"strconv"
	"time"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// Kernel is what the agent needs of the kernel edge (ipt.Runner).
type Kernel interface {
	Apply(ctx context.Context, rulesets []ipt.Ruleset, stale map[ipt.Family][]string) error
	Diff(ctx context.Context, rs *ipt.Ruleset) ([]string, error)
	ListChains(ctx context.Context, f ipt.Family) ([]string, error)
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
	Status *Status
	// Observer, when set, hears of every Sync.
	Observer SyncObserver
}

// SyncResult says what one sync did.
type SyncResult struct {
	Chains, Rules, Sets, Members int
	Took                         time.Duration
	// The phases of Took: policy.Compile, the kernel transaction, and
	// writing the snapshot, index and record of the sync.
	Compile, Apply, Write time.Duration
}

// Sync stores snap and makes the kernel match it plus the attachments CNI
// ADD recorded, all under the data directory lock. On error nothing of the
// previous snapshot, index or rules is lost: the snapshot and index are
// replaced only after the kernel accepted the new rules.
func (a *Agent) Sync(ctx context.Context, snap *policy.Snapshot) (SyncResult, error) {
	start := time.Now()
	res, err := a.syncLocked(ctx, snap)
	if a.Observer != nil {
		obs := res
		obs.Took = time.Since(start)
		a.Observer.ObserveSync(obs, err)
	}
	return res, err
}

func (a *Agent) syncLocked(ctx context.Context, snap *policy.Snapshot) (SyncResult, error) {
	start := time.Now()
	unlock, err := a.Store.Lock(ctx, a.LockTimeout)
	if err != nil {
		return SyncResult{}, err
	}
	defer unlock()
	// Under the lock, a temp file is what a killed agent or plugin left.
	if err := a.Store.RemoveTemps(); err != nil {
		a.Log.Warn("remove leftover temp files", "err", err)
	}
	atts, err := a.Store.Attachments()
	if err != nil {
		return SyncResult{}, fmt.Errorf("read pod records: %w", err)
	}
	var res SyncResult
	phase := time.Now()
	compiled, err := policy.Compile(snap, atts)
	if err != nil {
		return SyncResult{}, err
	}
	res.Compile, phase = time.Since(phase), time.Now()
	if err := a.writeTransitionIndex(&compiled.Index); err != nil {
		return SyncResult{}, err
	}
	stale, intent, err := a.staleChains(ctx, compiled)
	if err != nil {
		return SyncResult{}, err
	}
	if intent != nil {
		// New chains are about to exist: record them first, so that a sync
		// killed or failing half-way leaves no chain the next one won't know
		// to delete.
		if err := a.Store.WriteApplied(intent); err != nil {
			return SyncResult{}, err
		}
	}
	if err := a.Kernel.Apply(ctx, compiled.Rulesets, stale); err != nil {
		return SyncResult{}, fmt.Errorf("apply: %w", err)
	}
	res.Apply, phase = time.Since(phase), time.Now()
	applied := &state.Applied{Chains: map[string][]string{}}
	for _, rs := range compiled.Rulesets {
		applied.Chains[strconv.Itoa(int(rs.Family))] = rs.ChainNames()
	}
	if err := errors.Join(a.Store.WriteSnapshot(snap), a.Store.WriteIndex(&compiled.Index), a.Store.WriteApplied(applied)); err != nil {
		return SyncResult{}, err
	}
	res.Write = time.Since(phase)
	sum := summarize(compiled)
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

// staleChains returns, per family, our chains in the kernel that the new
// ruleset no longer has. The record of the last sync names them; when it is
// missing (first start, or state lost) the kernel is listed instead. When
// the new ruleset adds chains, it also returns the record to write before
// applying: every chain that may exist if the sync stops half-way.
func (a *Agent) staleChains(ctx context.Context, c *policy.Compiled) (map[ipt.Family][]string, *state.Applied, error) {
	prev, err := a.Store.ReadApplied()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	out := map[ipt.Family][]string{}
	intent := &state.Applied{Chains: map[string][]string{}}
	adds := false
	for _, rs := range c.Rulesets {
		fam := strconv.Itoa(int(rs.Family))
		var existing []string
		if prev != nil {
			existing = prev.Chains[fam]
		} else if existing, err = a.Kernel.ListChains(ctx, rs.Family); err != nil {
			return nil, nil, fmt.Errorf("list chains: %w", err)
		}
		want := map[string]bool{}
		for _, name := range rs.ChainNames() {
			want[name] = true
		}
		had := map[string]bool{}
		for _, name := range existing {
			had[name] = true
			if !want[name] {
				out[rs.Family] = append(out[rs.Family], name)
			}
		}
		intent.Chains[fam] = append([]string(nil), existing...)
		for _, name := range rs.ChainNames() {
			if !had[name] {
				adds = true
				intent.Chains[fam] = append(intent.Chains[fam], name)
			}
		}
	}
	if !adds {
		intent = nil
	}
	return out, intent, nil
}

func summarize(c *policy.Compiled) SyncResult {
	var r SyncResult
	for _, rs := range c.Rulesets {
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
	atts, err := a.Store.Attachments()
	if err != nil {
		return nil, err
	}
	compiled, err := policy.Compile(snap, atts)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := range compiled.Rulesets {
		d, err := a.Kernel.Diff(ctx, &compiled.Rulesets[i])
		if err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	return out, nil
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
