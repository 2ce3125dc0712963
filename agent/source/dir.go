package source

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
	"github.com/netpol/netpol/state/cluster"
)

// DirSource is a directory of manifests (see manifest.Load). A change is
// noticed by a fingerprint of the file names, sizes and modification times;
// each Load decodes only the files whose content changed since the last one
// (manifest.Cache). Once Notify was called, the directory is watched with
// inotify: a change is signalled as it happens, and Changed compares the
// fingerprint only once a second (fullCheckEvery), the net under what
// inotify cannot see, instead of at every poll. When the directory itself
// is deleted or moved away, the watch ends and every Changed compares
// fingerprints; at most once a fullCheckEvery it also tries to watch the
// path again, and once the directory is back the watch signals on the
// same channel as before.
type DirSource struct {
	Dir  string
	Node string
	// Store, when set, is where the decoded files of an earlier process
	// are found (read at the first Load; see EncodeCache).
	Store *state.Store

	once  sync.Once
	cache *manifest.Cache
	last  [32]byte

	watch     *dirWatch     // nil: not watched, every Changed compares fingerprints
	notify    chan struct{} // what Notify returned: every watch of Dir signals it
	checked   time.Time     // when the fingerprint was last compared
	rewatched time.Time     // when a broken watch was last tried again

	noticed  time.Time         // when Changed first saw the fingerprint move
	hashes   map[string]string // file name -> content hash, at the last Load
	received []Change          // not taken yet (TakeReceived)
}

// Load reads every manifest in the directory.
func (d *DirSource) Load(context.Context) (*policy.Snapshot, error) {
	d.once.Do(func() {
		d.cache = manifest.NewCache(d.Node)
		if d.Store != nil {
			if stored, err := cluster.ReadManifestCache(d.Store); err == nil {
				d.cache.Seed(stored)
			}
		}
	})
	if d.watch != nil {
		d.watch.dirty.Store(false) // an event from now on is a change after this Load
	}
	fp, err := d.fingerprint()
	if err != nil {
		return nil, err
	}
	d.last, d.checked = fp, time.Now()
	when := d.noticed
	if when.IsZero() {
		when = time.Now()
	}
	snap, err := d.cache.Load(d.Dir)
	if err != nil {
		return nil, err // noticed stays: the change is timed from when it was first seen
	}
	d.noticed = time.Time{}
	d.noteChanges(d.cache.Versions(), when)
	return snap, nil
}

// Stats says what the last Load decoded and what it reused.
func (d *DirSource) Stats() manifest.Stats {
	if d.cache == nil {
		return manifest.Stats{}
	}
	return d.cache.Stats()
}

// EncodeCache returns the decoded files of the last Load, encoded for
// Store.WriteManifestCacheData (for the next process to reuse), or nil
// when the last Load decoded nothing new. It takes no lock and only reads
// what the last Load made, so it can run beside other work; the caller
// writes the result under the data directory lock.
func (d *DirSource) EncodeCache() ([]byte, error) {
	if d.Store == nil || d.cache == nil || d.cache.Stats().Decoded == 0 {
		return nil, nil
	}
	return cluster.EncodeManifestCache(d.cache.Stored())
}

// Changed reports whether any manifest was added, removed or modified.
func (d *DirSource) Changed(context.Context) (bool, error) {
	if w := d.watch; w != nil && !w.broken.Load() && time.Since(d.checked) < fullCheckEvery {
		if !w.pending() {
			return false, nil
		}
		if d.noticed.IsZero() {
			d.noticed = time.Now()
		}
		return true, nil
	}
	d.rewatch()
	fp, err := d.fingerprint()
	if err != nil {
		return false, err
	}
	d.checked = time.Now()
	if fp != d.last && d.noticed.IsZero() {
		d.noticed = time.Now()
	}
	return fp != d.last, nil
}

// rewatch replaces a watch that ended (its directory deleted or moved
// away) by a new watch of Dir, trying at most once a fullCheckEvery; while
// Dir is missing the broken watch stays. The caller compares fingerprints
// right after, so a change made before the new watch began is not lost.
func (d *DirSource) rewatch() {
	if d.watch == nil || !d.watch.broken.Load() || time.Since(d.rewatched) < fullCheckEvery {
		return
	}
	d.rewatched = time.Now()
	w := watchDir(d.Dir, d.notify)
	if w == nil {
		return
	}
	d.watch.close()
	d.watch = w
}

// Notify starts watching the directory and returns the channel that
// signals its changes (see Notifier); nil when it cannot be watched.
func (d *DirSource) Notify() <-chan struct{} {
	if d.watch == nil {
		if d.notify == nil {
			d.notify = make(chan struct{}, 1)
		}
		d.watch = watchDir(d.Dir, d.notify)
		d.checked = time.Time{} // what changed before the watch began: compare at the next Changed
	}
	if d.watch == nil {
		return nil
	}
	return d.notify
}

// Close stops watching the directory.
func (d *DirSource) Close() {
	if d.watch != nil {
		d.watch.close()
	}
}

func (d *DirSource) fingerprint() ([32]byte, error) {
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		return [32]byte{}, fmt.Errorf("manifests: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		info, err := os.Stat(filepath.Join(d.Dir, n))
		if err != nil {
			continue // removed between ReadDir and Stat: the next poll sees it
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", n, info.Size(), info.ModTime().UnixNano())
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}
