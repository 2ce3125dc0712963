package agent

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// snapshotWriter writes the snapshot after the sync that committed it,
// beside the run loop, so that the loop goes on to the next change while
// a 10,000-pod snapshot is encoded and written (tens of milliseconds).
// One write runs at a time, and one at most every writeBehindEvery: a
// snapshot handed over before then replaces any not written yet, so a burst
// of changes costs one write, and the last one handed over is the last
// written.
//
// A crash before the write leaves the snapshot of an earlier sync, as a
// crash between the commit and a synchronous write did: nothing reads it
// on ADD or DEL, a restarted agent syncs its source again (its first sync
// finds the stored snapshot unlike the source's and rewrites everything),
// and an agent whose source is not ready enforces it, an older view of the
// cluster, as it would after any restart.
type snapshotWriter struct {
	mu      sync.Mutex
	pending *policy.Snapshot
	running bool
	idle    *sync.Cond    // signalled when running turns false
	hurry   chan struct{} // closed by flush: write now
	last    time.Time     // when the last write started
}

// writeBehindEvery is the shortest time between two snapshot writes.
const writeBehindEvery = time.Second

// write hands snap over; write(a, snap) runs in the background.
func (w *snapshotWriter) write(a *Agent, snap *policy.Snapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = snap
	if w.running {
		return
	}
	w.running = true
	if w.hurry == nil {
		w.hurry = make(chan struct{})
	}
	go w.run(a, w.hurry)
}

// run writes the pending snapshots until none is left.
func (w *snapshotWriter) run(a *Agent, hurry <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.pending != nil {
		if wait := time.Until(w.last.Add(writeBehindEvery)); wait > 0 {
			w.mu.Unlock()
			select {
			case <-time.After(wait):
			case <-hurry:
			}
			w.mu.Lock()
		}
		w.last = time.Now()
		snap := w.pending
		w.pending = nil
		w.mu.Unlock()
		err := a.Store.WriteSnapshot(snap)
		w.mu.Lock()
		if err != nil {
			a.Log.Error("write snapshot; the next sync writes it again", "err", err)
			a.writeFailed.Store(true)
		}
	}
	w.running = false
	if w.idle != nil {
		w.idle.Broadcast()
	}
}

// flush waits until no write runs.
func (w *snapshotWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.idle == nil {
		w.idle = sync.NewCond(&w.mu)
	}
	if w.running {
		close(w.hurry)
		w.hurry = nil
	}
	for w.running {
		w.idle.Wait()
	}
}

// realizedWriter writes realized.json after the sync that committed its
// versions, beside the run loop (Run), as snapshotWriter does the
// snapshot: the file is still written only after the kernel holds what it
// says, a little later, and a change that follows a policy change is not
// kept waiting for the encoding and fsync of 1,000 policies' versions.
// The last one handed over is the last written; failed says a write
// failed, so that the next sync writes again.
type realizedWriter struct {
	mu      sync.Mutex
	pending *state.Realized
	running bool
	idle    *sync.Cond // signalled when running turns false
	failed  atomic.Bool
}

// write hands r over; it is written in the background.
func (w *realizedWriter) write(a *Agent, r *state.Realized) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = r
	if !w.running {
		w.running = true
		go w.run(a)
	}
}

// run writes the pending versions until none is left.
func (w *realizedWriter) run(a *Agent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.pending != nil {
		r := w.pending
		w.pending = nil
		w.mu.Unlock()
		err := a.Store.WriteRealized(r)
		w.mu.Lock()
		if err != nil {
			a.Log.Warn("store the realized policy versions", "err", err)
			w.failed.Store(true)
		}
	}
	w.running = false
	if w.idle != nil {
		w.idle.Broadcast()
	}
}

// flush waits until no write runs.
func (w *realizedWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.idle == nil {
		w.idle = sync.NewCond(&w.mu)
	}
	for w.running {
		w.idle.Wait()
	}
}
