package agent

import (
	"sync"
	"time"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
	"github.com/netpol/netpol/state/cluster"
)

// behindWriter writes a file after the sync that committed what it says,
// beside the run loop, so that the loop goes on to the next change while
// the file is encoded and written: the snapshot (10,000 pods: tens of
// milliseconds) and realized.json (1,000 policies' versions). The file is
// still written only after the kernel holds what it says, a little later.
// One write runs at a time, and one at most every `every` (0: no limit): a
// version handed over before then replaces any not written yet, so a burst
// of changes costs one write, and the last one handed over is the last
// written. save writes one version and reports its own failure (the next
// sync then writes again).
//
// A crash before the snapshot's write leaves the snapshot of an earlier
// sync, as a crash between the commit and a synchronous write did: nothing
// reads it on ADD or DEL, a restarted agent syncs its source again (its
// first sync finds the stored snapshot unlike the source's and rewrites
// everything), and an agent whose source is not ready enforces it, an older
// view of the cluster, as it would after any restart.
type behindWriter[T any] struct {
	mu      sync.Mutex
	pending *T
	save    func(*T)      // how pending is written
	every   time.Duration // the shortest time between two writes
	running bool
	idle    *sync.Cond    // signalled when running turns false
	hurry   chan struct{} // closed by flush: write now
	last    time.Time     // when the last write started
}

// writeBehindEvery is the shortest time between two snapshot writes.
const writeBehindEvery = time.Second

// write hands v over; save(v) runs in the background, every after the
// last write started at the soonest.
func (w *behindWriter[T]) write(v *T, every time.Duration, save func(*T)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending, w.every, w.save = v, every, save
	if w.running {
		return
	}
	w.running = true
	if w.hurry == nil {
		w.hurry = make(chan struct{})
	}
	go w.run(w.hurry)
}

// run writes the pending versions until none is left, on a thread at
// BackgroundNice: nothing waits for a write behind (flush, when Run
// returns, at most), and a CNI ADD may wait for the CPU it takes.
func (w *behindWriter[T]) run(hurry <-chan struct{}) {
	lowerPriority()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.pending != nil {
		if wait := time.Until(w.last.Add(w.every)); wait > 0 {
			w.mu.Unlock()
			select {
			case <-time.After(wait):
			case <-hurry:
			}
			w.mu.Lock()
		}
		w.last = time.Now()
		v, save := w.pending, w.save
		w.pending = nil
		w.mu.Unlock()
		save(v)
		w.mu.Lock()
	}
	w.running = false
	if w.idle != nil {
		w.idle.Broadcast()
	}
}

// flush writes what is pending at once and waits until no write runs.
func (w *behindWriter[T]) flush() {
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

// writeSnapshotBehind hands snap to the snapshot's writer (at most one
// write every writeBehindEvery).
func (a *Agent) writeSnapshotBehind(snap *policy.Snapshot) {
	a.writer.write(snap, writeBehindEvery, func(s *policy.Snapshot) {
		if err := cluster.WriteSnapshot(a.Store, s); err != nil {
			a.Log.Error("write snapshot; the next sync writes it again", "err", err)
			a.writeFailed.Store(true)
		}
	})
}

// writeRealizedBehind hands r to realized.json's writer.
func (a *Agent) writeRealizedBehind(r *state.Realized) {
	a.rz.writer.write(r, 0, func(r *state.Realized) {
		if err := a.Store.WriteRealized(r); err != nil {
			a.Log.Warn("store the realized policy versions", "err", err)
			a.rz.writeFailed.Store(true)
		}
	})
}

// writeNow writes the files of a committed sync before it returns, for an
// agent that does not write behind (--once): the snapshot (unless stored
// already), expected.json and realized.json, side by side. Each is encoded
// and written to its own temporary file and renamed into place (the
// snapshot and realized.json fsynced first, expected.json not), and none
// reads what another writes, so the two fsyncs overlap where they followed
// one another. A failed snapshot write is the sync's error; the other two
// log their own, and are written all the same: they describe the commit,
// which the kernel holds whether or not the snapshot could be stored.
func (a *Agent) writeNow(snap *policy.Snapshot, compiled *policy.Compiled, began, committed time.Time) ([]time.Duration, error) {
	var wg sync.WaitGroup
	var snapErr error
	if a.written != snap {
		wg.Go(func() { snapErr = a.writeSnapshot(snap) })
	}
	wg.Go(func() { a.writeExpected(compiled) })
	delays := a.realize(snap, began, committed)
	wg.Wait()
	a.encoded, a.encodedOf = nil, nil
	if snapErr != nil {
		return nil, snapErr
	}
	a.written = snap
	return delays, nil
}
