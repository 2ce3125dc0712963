package agent

import (
	"context"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state/cluster"
)

// holder is a Kernel that can tell whether it holds rulesets exactly
// (ipt.Runner.Holds).
type holder interface {
	Holds(ctx context.Context, rulesets []ipt.Ruleset) ([]string, error)
}

// prover is a holder that can skip reading the rules back given the proof
// an earlier read-back made (ipt.Runner.HoldsProven).
type prover interface {
	HoldsProven(ctx context.Context, rulesets []ipt.Ruleset, proof string) ([]string, string, error)
}

// inForce reports whether a sync of compiled (made of snap) would
// change nothing: the stored index and snapshot are already its own, and
// the kernel, read back now, holds exactly its rulesets, no more and no
// less. No record of what was applied is trusted: a set member or chain
// removed behind the agent's back, or one of ours left over, makes it
// false and the sync rewrites as usual (fail closed). With IPv6 turned off,
// or a kernel that cannot read itself back, it is false too.
//
// The rules are read back unless the data directory holds the kernel
// edge's proof that they have not changed since a read-back found them as
// wanted (ipt.Runner.HoldsProven: same boot, network namespace and
// nftables generation); the sets are always read.
//
// When the stored index or snapshot differ (a change since the last run)
// it reads back only when a proof is stored, so that a Runner that finds
// its rules proven changes only the sets.
//
// Only the first sync of an Agent looks (a --once run, a restarted agent):
// later syncs of a running agent cost less applied incrementally (the
// Runner remembers what it applied, and after a Holds with no difference
// it remembers that) than read back, and a repair follows a read-back that
// found drift.
func (a *Agent) inForce(ctx context.Context, snap *policy.Snapshot, compiled *policy.Compiled) bool {
	k, ok := a.Kernel.(holder)
	if !ok || a.ipv6Off || a.readBack {
		return false
	}
	a.readBack = true
	stored := a.storedSnap
	a.storedSnap = nil
	files := a.Store.HasIndex(&compiled.Index)
	if stored != nil {
		got := <-stored
		a.encoded, a.encodedOf = got.encoded, snap
		files = got.same && files
	} else {
		files = files && cluster.HasSnapshot(a.Store, snap)
	}
	if !files && a.Store.ReadRulesProof() == "" {
		return false
	}
	// With the files changed but a proof stored, the read-back is a set
	// dump: when it proves the rules in force, the Runner remembers them
	// and the sets that matched, and the sync changes only set members.
	diffs, err := a.holds(ctx, k, compiled.Rulesets)
	if err != nil {
		a.Log.Debug("read back before sync", "err", err)
		return false
	}
	if !files {
		return false
	}
	if len(diffs) > 0 {
		a.Log.Info("kernel differs from the stored state; rewriting", "differences", len(diffs), "first", diffs[0])
		return false
	}
	return true
}

// holds asks k whether it holds rulesets, with the stored rules proof when
// k takes one, and stores the proof it returns.
func (a *Agent) holds(ctx context.Context, k holder, rulesets []ipt.Ruleset) ([]string, error) {
	p, ok := k.(prover)
	if !ok {
		return k.Holds(ctx, rulesets)
	}
	proof := a.Store.ReadRulesProof()
	diffs, next, err := p.HoldsProven(ctx, rulesets, proof)
	if err != nil {
		return nil, err
	}
	proven := proof != "" && next == proof
	a.Log.Info("read back before sync", "rules", map[bool]string{true: "proven unchanged", false: "read"}[proven],
		"differences", len(diffs))
	if next != proof {
		if err := a.Store.WriteRulesProof(next); err != nil {
			a.Log.Warn("store the rules proof", "err", err)
		}
	}
	return diffs, nil
}

// storedSnapshot is what compareStoredSnapshot found.
type storedSnapshot struct {
	same    bool
	encoded []byte // the snapshot compared, encoded (nil when none is stored)
}

// compareStoredSnapshot starts comparing the stored snapshot with snap
// (encoding snap, a tenth of a second at 10,000 pods) beside the compile,
// when the sync is the first one, which will ask (inForce); the answer
// arrives on storedSnap, and the encoding is kept for the write.
func (a *Agent) compareStoredSnapshot(snap *policy.Snapshot) {
	if a.readBack {
		return
	}
	out := make(chan storedSnapshot, 1)
	go func() {
		same, encoded := cluster.CompareSnapshot(a.Store, snap)
		out <- storedSnapshot{same, encoded}
	}()
	a.storedSnap = out
}

// writeSnapshot stores snap, with the encoding the first sync's comparison
// made of it when there is one.
func (a *Agent) writeSnapshot(snap *policy.Snapshot) error {
	data, of := a.encoded, a.encodedOf
	a.encoded, a.encodedOf = nil, nil
	if data != nil && of == snap {
		return a.Store.WriteSnapshotData(data)
	}
	return cluster.WriteSnapshot(a.Store, snap)
}

// storeAppliedProof stores the rules proof the Kernel's last Apply made,
// if it made one (ipt.Runner.AppliedProof: an Apply that read the rules
// back and saw no other transaction until its end), so that the next
// first sync need not read the rules back.
func (a *Agent) storeAppliedProof() {
	k, ok := a.Kernel.(interface{ AppliedProof() string })
	if !ok {
		return
	}
	if proof := k.AppliedProof(); proof != "" {
		if err := a.Store.WriteRulesProof(proof); err != nil {
			a.Log.Warn("store the rules proof", "err", err)
		}
	}
}
