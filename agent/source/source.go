// Package source is where the agent's snapshots come from: the interfaces
// the run loop reads a source through, and the manifest-directory source
// (the Kubernetes API source is package kube).
package source

import (
	"context"
	"errors"
	"time"

	"github.com/netpol/netpol/policy"
)

// Source yields snapshots: a directory of manifests, or the Kubernetes API.
type Source interface {
	// Load returns the current snapshot, or an error naming what is invalid.
	// A source that has no complete view yet (the API server cannot be
	// reached) returns an error matching ErrNotReady.
	Load(ctx context.Context) (*policy.Snapshot, error)
	// Changed reports whether Load would return something new since the
	// last Load (it may report true spuriously, never false wrongly).
	Changed(ctx context.Context) (bool, error)
}

// Notifier is a Source that signals changes as they happen, so that Run
// loads them after a short debounce instead of at the next poll. The
// channel may deliver spurious signals; Changed decides.
type Notifier interface {
	Notify() <-chan struct{}
}

// Fresher is a Source that knows up to when its view is known to match the
// cluster (now, while it is connected). Sources without it are taken as
// current at every successful Load or Changed.
type Fresher interface {
	CurrentAsOf() time.Time
}

// ErrNotReady is returned (wrapped) by Source.Load while the source has no
// complete view of the cluster yet. Run then enforces the stored snapshot,
// the cache of the last good view, and loads as soon as the source signals.
var ErrNotReady = errors.New("source not ready")

// Change is one version of one object that a source received: an object
// from the API (Version is its resourceVersion, "" once deleted) or a
// manifest file (Version is "sha256:" and the start of its content's hash,
// "" once removed).
type Change struct {
	Object   string // "networkpolicy ns/name", "pod ns/name", "namespace name", "file NAME"
	Version  string
	Received time.Time
}

// Receiver is a Source that tells what it received: TakeReceived returns
// the changes that the last Load included and forgets them, so that the
// run loop can time each one until the kernel commits it.
type Receiver interface {
	TakeReceived() []Change
}
