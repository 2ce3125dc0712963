// Package agent is the node sidecar `netpol-agent`. It keeps the cluster
// snapshot (from a directory of manifests or the Kubernetes API), writes it where the plugin reads
// it, and makes the kernel match policy.Compile(snapshot, recorded pods),
// changing only what differs from its last sync. It compiles without the
// data directory lock and holds it only to commit (records read again, the
// kernel, the index), so that a concurrent CNI ADD or DEL is never lost and
// waits only for the commit.
package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync/atomic"
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
	// ApplyChange makes the kernel go from prev, what the last Apply or
	// ApplyChange installed (with the plugin's changes since), to next,
	// touching only what differs; ipt.ErrNoChange when it cannot (nothing
	// changed), any other error after a partial attempt. Either way the
	// next Apply rewrites everything.
	ApplyChange(ctx context.Context, prev, next []ipt.Ruleset) error
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
	// readBack: the first sync has looked for its result in force
	// (inforce.go); later ones apply incrementally instead.
	readBack bool
	// storedSnap, while the first sync compiles, tells whether the stored
	// snapshot is the one it syncs (inforce.go); encoded is the snapshot
	// encodedOf, as that comparison encoded it for the write.
	storedSnap <-chan storedSnapshot
	encoded    []byte
	encodedOf  *policy.Snapshot
	// StaleGrace: Sync removes a pod record once it is this old if its pod
	// is not on this node in the snapshot and its network namespace is gone
	// (a DEL that never came); 0 keeps every record.
	StaleGrace time.Duration
	// Audit, node-wide: every policy is evaluated, nothing it would deny
	// is dropped (policy.Snapshot.Audit).
	Audit bool
	// rz: the changes not committed yet, the policy versions in force.
	rz realizer
	// Now and NetnsExists, when set, replace the clock and the check that a
	// network namespace path exists (tests).
	Now         func() time.Time
	NetnsExists func(path string) bool
	// FullSync makes every sync compile the whole snapshot and apply every
	// ruleset (through the Runner's memory), as the agent did before it
	// patched changes: the baseline of benchmarks and tests.
	FullSync bool
	// BeforeCommit, when set, runs after a sync compiled and before it
	// takes the lock to commit, each time it does (tests: an ADD in
	// between).
	BeforeCommit func()

	// last is what the last successful sync committed (live.go); nil after
	// a failure, a repair or at start; written, the snapshot last stored.
	// Only the goroutine that syncs uses them.
	last    *applied
	written *policy.Snapshot
	// WriteBehind: the snapshot is written after the sync returns, beside
	// the caller (Run sets it; see behindWriter); writer does it, and
	// writeFailed says a write failed, so that the next sync writes again.
	WriteBehind bool
	writer      behindWriter[policy.Snapshot]
	writeFailed atomic.Bool
	// commits counts the syncs that changed the kernel (Run: a read-back
	// that overlapped one cannot tell drift from that sync's change).
	commits uint64

	// DropLog, when set, is how the rules log drops (stored in the
	// snapshot, so that a compile of it logs the same); nil keeps the snapshot's,
	// policy.DefaultDropLog() when it has none.
	DropLog *policy.DropLog

	drops dropViews // for RunDropLog: the last sync's pods and groups
	ex    expecter  // expected.json, for CHECK
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

// syncLocked prepares the sync without the data directory lock (records
// read, snapshot compiled), so that ADD and DEL are not kept waiting while
// it compiles, then takes the lock to commit: it reads the records again,
// and when ADD or DEL changed them meanwhile, patches the result with
// them, so that no pod recorded before the commit is left out of it, and a
// pod ADDed after it finds the new index. The snapshot is written after
// the lock is released: the plugin does not read it on ADD or DEL.
func (a *Agent) syncLocked(ctx context.Context, snap *policy.Snapshot, reconcile bool) (health.SyncResult, error) {
	start := time.Now()
	src := snap
	snap = a.withDropLog(a.nodeWide(snap))
	var res health.SyncResult
	stamp, atts, err := a.records()
	if err != nil {
		return res, err
	}
	a.compareStoredSnapshot(snap)
	compiled, err := a.compile(snap, atts)
	if err != nil {
		a.last = nil
		return res, err
	}
	res.Compile = time.Since(start)
	unlock, compiled, prepared, err := a.lockForCommit(ctx, snap, compiled, records{stamp, atts}, &res)
	if err != nil {
		a.last = nil
		return res, err
	}
	locked := time.Now()
	compiled, err = a.commit(ctx, snap, reconcile, compiled, prepared, &res)
	unlock()
	res.Held = time.Since(locked)
	a.commits++ // a failed commit may have changed the kernel too
	if err != nil {
		a.Kernel.Forget()
		a.last = nil
		return health.SyncResult{}, err
	}
	a.last.src = src
	phase := time.Now()
	committed := phase
	if res.InForce {
		a.written = snap // the stored snapshot is snap already (inForce)
	}
	if a.writeFailed.Swap(false) {
		a.written = nil // write it again
	}
	if a.WriteBehind {
		if a.written != snap {
			a.writeSnapshotBehind(snap)
			a.written = snap
		}
		a.encoded, a.encodedOf = nil, nil
		a.writeExpected(compiled)
		res.Realized = a.realize(snap, start, committed)
	} else if res.Realized, err = a.writeNow(snap, compiled, start, committed); err != nil {
		return health.SyncResult{}, err
	}
	res.Write += time.Since(phase)
	if a.last != nil {
		a.drops.update(snap, a.last.atts, compiled.Groups)
	}
	sum := summarize(compiled, res.Disabled)
	res.Chains, res.Rules, res.Sets, res.Members = sum.Chains, sum.Rules, sum.Sets, sum.Members
	res.Took = time.Since(start)
	return res, nil
}

// commitTries is how many times a sync takes the lock to commit: each time
// but the last, finding that ADD or DEL changed the pod records since it
// compiled, it lets the lock go again and patches its result with them
// without it (lockForCommit); the last time it keeps the lock and commit
// patches under it, so that a stream of ADDs cannot hold a sync off.
const commitTries = 3

// lockForCommit takes the data directory lock for the commit of compiled,
// made of the records prepared. A commit that found the records changed
// would patch compiled with them under the lock (this node's pods
// compiled again: tens of milliseconds, hundreds on a loaded machine) and
// keep every CNI ADD and DEL of the node waiting meanwhile; so while tries
// remain, it unlocks, reads the records and patches without the lock, and
// locks again. It returns the unlock function, the result and the records
// it is made of.
func (a *Agent) lockForCommit(ctx context.Context, snap *policy.Snapshot, compiled *policy.Compiled, prepared records,
	res *health.SyncResult) (func(), *policy.Compiled, records, error) {
	for try := 1; ; try++ {
		if a.BeforeCommit != nil {
			a.BeforeCommit()
		}
		asked := time.Now()
		unlock, err := a.Store.Lock(ctx, a.LockTimeout)
		if err != nil {
			return nil, nil, prepared, err
		}
		res.Wait += time.Since(asked)
		if try == commitTries {
			return unlock, compiled, prepared, nil
		}
		stamp, err := a.Store.RecordsStamp()
		if err != nil || stamp == prepared.stamp {
			return unlock, compiled, prepared, nil // commit reports the error
		}
		unlock()
		phase := time.Now()
		atts, err := a.attachments()
		if err != nil {
			return nil, nil, prepared, err
		}
		if !sameAttachments(prepared.atts, atts) {
			if compiled, err = a.recompile(compiled, snap, prepared.atts, atts); err != nil {
				return nil, nil, prepared, err
			}
		}
		prepared = records{stamp, atts}
		res.Compile += time.Since(phase)
	}
}

// commit is the part of a sync under the lock: the records read again
// (stale ones removed), the result patched when they changed since
// compiled was made of before, the transition index, the kernel, the
// index. It returns what it committed.
func (a *Agent) commit(ctx context.Context, snap *policy.Snapshot, reconcile bool, compiled *policy.Compiled,
	prepared records, res *health.SyncResult) (*policy.Compiled, error) {
	// Under the lock, a temp file is what a killed agent or plugin left.
	if err := a.Store.RemoveTemps(); err != nil {
		a.Log.Warn("remove leftover temp files", "err", err)
	}
	before := prepared.atts
	stamp, err := a.Store.RecordsStamp()
	if err != nil {
		return nil, fmt.Errorf("read pod records: %w", err)
	}
	atts := before
	if stamp != prepared.stamp {
		if atts, err = a.attachments(); err != nil {
			return nil, err
		}
	}
	if reconcile {
		if kept := a.removeStale(snap, atts); len(kept) != len(atts) {
			atts, stamp = kept, [32]byte{} // read them again next time
		}
	}
	if !sameAttachments(before, atts) {
		phase := time.Now()
		if compiled, err = a.recompile(compiled, snap, before, atts); err != nil {
			return nil, err
		}
		res.Compile += time.Since(phase)
	}
	phase := time.Now()
	if a.inForce(ctx, snap, compiled) {
		// The first sync of this Agent found its result in the kernel and
		// the data directory already: nothing to write (see inForce).
		res.InForce, res.Apply = true, time.Since(phase)
		a.last = &applied{snap: snap, atts: atts, stamp: stamp, compiled: compiled}
		return compiled, nil
	}
	var indexChanged bool
	if a.last == nil {
		indexChanged = !a.Store.HasIndex(&compiled.Index) // a first sync, a change since the last run
	} else {
		indexChanged = !sameIndex(&a.last.compiled.Index, &compiled.Index)
	}
	if indexChanged {
		if err := a.writeTransitionIndex(&compiled.Index); err != nil {
			return nil, err
		}
	}
	if res.Disabled, res.Fast, err = a.program(ctx, compiled, atts); err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	a.storeAppliedProof()
	res.Apply, phase = time.Since(phase), time.Now()
	if indexChanged {
		if err := a.Store.WriteIndex(&compiled.Index); err != nil {
			return nil, err
		}
	}
	res.Write = time.Since(phase)
	a.last = &applied{snap: snap, atts: atts, stamp: stamp, compiled: compiled}
	return compiled, nil
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

// sameIndex reports whether a and b encode alike: at once when b is a
// patch that kept a's memberships (the same map and list), else by their
// encodings.
func sameIndex(a, b *policy.Index) bool {
	if a.Version == b.Version && len(a.Pods) == len(b.Pods) && len(a.Isolated) == len(b.Isolated) &&
		reflect.ValueOf(a.Pods).UnsafePointer() == reflect.ValueOf(b.Pods).UnsafePointer() &&
		(len(a.Isolated) == 0 || &a.Isolated[0] == &b.Isolated[0]) {
		return true
	}
	return bytes.Equal(state.EncodeIndex(a), state.EncodeIndex(b))
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
	a.rz.written = nil // the realized file goes too
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
