package agent

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// realizer remembers the changes received and not yet committed to the
// kernel, and the NetworkPolicy versions in force.
type realizer struct {
	pending []source.Change
	inForce map[string]state.PolicyRealized // by namespace/name; nil until read
	// policies and versions: the last realize's NetworkPolicies and their
	// policy.Version, reused for an equal policy at the same place (a
	// manifest's version is a hash of the whole object).
	policies []networkingv1.NetworkPolicy
	versions []string
	written  []state.PolicyRealized // what the realized file holds (or will: writer)
	writer   behindWriter[state.Realized]
	// writeFailed says a write of writer failed: the next realize writes again.
	writeFailed atomic.Bool
}

// version returns policy.Version(&nps[i]), reusing the last realize's.
func (r *realizer) version(nps []networkingv1.NetworkPolicy, i int) string {
	np := &nps[i]
	if np.ResourceVersion == "" && i < len(r.policies) && r.policies[i].Namespace == np.Namespace &&
		r.policies[i].Name == np.Name && reflect.DeepEqual(&r.policies[i], np) {
		return r.versions[i]
	}
	return policy.Version(np)
}

// NoteReceived takes the changes src received that its last Load included
// (when it is a source.Receiver): the next successful sync times each one
// until the kernel commits it.
func (a *Agent) NoteReceived(src source.Source) {
	if r, ok := src.(source.Receiver); ok {
		a.rz.pending = append(a.rz.pending, r.TakeReceived()...)
	}
}

// realize runs after the kernel committed snap at committed (and the sync
// began at began): it stores, per NetworkPolicy, the version now in force
// (kept with its old times when unchanged), and returns how long each
// pending change took from its receipt to that commit. A version with no
// receipt of its own (a manifest's policy, whose file changed; a stored
// snapshot) counts as received with the earliest pending change, else when
// the sync began. The file is written after the commit, so a reader that
// finds a version there knows the kernel holds it; a failure to write it
// is logged, never undoes the sync.
func (a *Agent) realize(snap *policy.Snapshot, began, committed time.Time) []time.Duration {
	if a.rz.inForce == nil {
		a.rz.inForce = map[string]state.PolicyRealized{}
		prev, err := a.Store.ReadRealized()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			a.Log.Warn("realized versions unreadable; timing every policy anew", "err", err)
		}
		if prev != nil {
			for _, p := range prev.Policies {
				a.rz.inForce[p.Policy] = p
			}
		}
	}
	received := map[string]time.Time{}
	fallback := began
	var delays []time.Duration
	for _, c := range a.rz.pending {
		received[c.Object+"@"+c.Version] = c.Received
		if c.Received.Before(fallback) {
			fallback = c.Received
		}
		delays = append(delays, committed.Sub(c.Received))
	}
	a.rz.pending = nil
	now := map[string]state.PolicyRealized{}
	out := &state.Realized{}
	versions := make([]string, len(snap.Policies))
	for i := range snap.Policies {
		np := &snap.Policies[i]
		key, v := np.Namespace+"/"+np.Name, a.rz.version(snap.Policies, i)
		versions[i] = v
		r, ok := a.rz.inForce[key]
		if !ok || r.Version != v {
			r = state.PolicyRealized{Policy: key, Version: v, Received: fallback, Realized: committed}
			if t, ok := received["networkpolicy "+key+"@"+np.ResourceVersion]; ok && np.ResourceVersion != "" {
				r.Received = t
			}
		}
		now[key] = r
		out.Policies = append(out.Policies, r)
	}
	a.rz.inForce, a.rz.policies, a.rz.versions = now, slices.Clone(snap.Policies), versions
	if a.rz.writeFailed.Swap(false) {
		a.rz.written = nil // write it again
	}
	if a.rz.written != nil && slices.Equal(a.rz.written, out.Policies) {
		return delays // the file holds it already
	}
	a.rz.written = nil
	if a.WriteBehind {
		a.writeRealizedBehind(out)
		a.rz.written = out.Policies
		return delays
	}
	if err := a.Store.WriteRealized(out); err != nil {
		a.Log.Warn("store the realized policy versions", "err", err)
		return delays
	}
	a.rz.written = out.Policies
	return delays
}
