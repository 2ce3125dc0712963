package health

import (
	"time"

	"github.com/netpol/netpol/ipt"
)

// SyncResult says what one sync did.
type SyncResult struct {
	Chains, Rules, Sets, Members int
	Took                         time.Duration
	// The phases of Took: policy.Compile, the kernel transaction, and
	// writing the snapshot and index.
	Compile, Apply, Write time.Duration
	// Wait is how long the sync waited for the data directory lock, Held
	// how long it held it (the commit: records read again, kernel, index).
	Wait, Held time.Duration
	// Fast says the kernel was changed incrementally (only what differs).
	Fast bool
	// Disabled are the families left out because their tables are
	// unusable and no local pod has an address of theirs.
	Disabled []ipt.Family
	// InForce: the kernel, read back, already held exactly the compiled
	// rules and the stored snapshot and index were already this sync's, so
	// nothing was written (Apply is the time the read-back took).
	InForce bool
	// Realized is, per change received since the last sync (an object of
	// the API, a manifest file), the time from its receipt to this sync's
	// kernel commit.
	Realized []time.Duration
}

// SyncObserver hears of every Agent.Sync (metrics).
type SyncObserver interface {
	ObserveSync(res SyncResult, err error)
}
