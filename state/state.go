// Package state owns the data directory that the plugin and the agent share
// (dataDir, default conf.DefaultDataDir, /var/lib/netpol): every file in it,
// its name and its format. Nothing else in netpol opens a file there.
//
//	lock            flock(2) held by whoever reads or changes the kernel state
//	snapshot.json   the agent's cached cluster view (policy.Snapshot, encoded by state/cluster)
//	index           the per-node view the plugin reads on ADD/DEL (node.Index,
//	                stored as lines of text: index.go)
//	manifests.cache what --manifests made of each file, by content hash
//	                (state/cluster), so that unchanged files are not decoded again
//	pods/ID@IF.json one record per attachment CNI ADD set up (policy.Attachment)
//	quarantine/     pod records found unusable, moved aside (Quarantined)
//	realized.json   the NetworkPolicy versions in force and when (Realized)
//	expected.json   the rules of the last commit, rendered, for CHECK (expected.go)
//	netpol.log      the plugin's log (conf.LogFileName, when the netconf names no other)
//	drops/          the agent's drop records, JSON lines, rotated (drops.go)
//
// Every file but the drop log is written atomically (temp file + rename in the same
// directory), so a reader sees the old or the new version, never half.
// The plugin and the agent both import this package; it imports only
// policy/node (the types it stores), ipt and conf (the configured
// defaults), no Kubernetes package: the files that hold Kubernetes objects
// (snapshot.json, manifests.cache) are encoded by package state/cluster,
// which the plugin does not import, and stored here as bytes.
package state

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/policy/node"
)

// Store is a data directory.
type Store struct {
	Dir string
}

// New returns the store at dir.
func New(dir string) *Store { return &Store{Dir: dir} }

const (
	snapshotFile = "snapshot.json"
	indexFile    = "index"
	// appliedFile is where versions before the kernel edge owned cleanup
	// recorded the chains of the last sync; only RemoveAll still knows it,
	// to delete one left over from such a version on uninstall.
	appliedFile = "applied.json"
	podsDir     = "pods"
	lockFile    = "lock"
	// quarantineDir holds pod records moved aside as unusable.
	quarantineDir = "quarantine"
	// statusProbe is the file STATUS writes to prove the directory is usable.
	statusProbe = ".status-probe"
)

// Probe proves the directory is writable by writing and removing a scratch
// file (CNI STATUS).
func (s *Store) Probe() error {
	path := filepath.Join(s.Dir, statusProbe)
	if err := os.WriteFile(path, []byte("ok"), 0o600); err != nil {
		return err
	}
	return os.Remove(path)
}

// Ensure creates the directory layout (mode 0700: records name pods).
func (s *Store) Ensure() error {
	if err := os.MkdirAll(filepath.Join(s.Dir, podsDir), 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", s.Dir, err)
	}
	return nil
}

// Lock takes the data directory's exclusive lock, waiting at most timeout,
// or until ctx ends (an agent told to stop does not wait out the timeout),
// creating the directory layout and the lock file when missing.
// The lock is released by the returned function, or by the kernel when the
// process dies, so a killed agent or plugin never leaves a stale lock.
// Waiters poll every few milliseconds: the agent leaves gaps between its
// syncs (debounce) and a waiting ADD takes the lock in the first one.
//
// The lock is the file at dataDir/lock, not an inode: a waiter that gets
// the flock of a file that was unlinked (RemoveAll, by uninstall) or
// replaced in the meantime lets it go and locks the file that is there now,
// so two processes never both hold "the lock".
func (s *Store) Lock(ctx context.Context, timeout time.Duration) (unlock func(), err error) {
	unlock, _, err = s.lock(ctx, timeout, true)
	return unlock, err
}

// LockExisting is Lock for a data directory that is already set up: when
// it has no lock file (never set up, or emptied by uninstall) it returns
// ok false, having created nothing.
func (s *Store) LockExisting(ctx context.Context, timeout time.Duration) (unlock func(), ok bool, err error) {
	return s.lock(ctx, timeout, false)
}

func (s *Store) lock(ctx context.Context, timeout time.Duration, create bool) (func(), bool, error) {
	path := filepath.Join(s.Dir, lockFile)
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		if attempt > 0 && time.Now().After(deadline) {
			return nil, false, fmt.Errorf("lock %s (waited %s): the file was replaced while waiting", path, timeout)
		}
		flags := os.O_RDWR
		if create {
			if err := s.Ensure(); err != nil {
				return nil, false, err
			}
			flags |= os.O_CREATE
		}
		f, err := os.OpenFile(path, flags, 0o600)
		if !create && errors.Is(err, os.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := flockWait(ctx, f, deadline); err != nil {
			_ = f.Close()
			return nil, false, fmt.Errorf("lock %s (waited %s): %w", path, timeout, err)
		}
		if isFileAt(f, path) {
			return func() { _ = f.Close() }, true, nil
		}
		_ = f.Close() // unlinked or replaced while we waited: lock the current one
	}
}

// flockWait takes flock(2) on f, polling until deadline or ctx ends.
func flockWait(ctx context.Context, f *os.File, deadline time.Time) error {
	for wait := time.Millisecond; ; wait = min(wait*2, 10*time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// isFileAt reports whether the open file f is still the file at path.
func isFileAt(f *os.File, path string) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	now, err := os.Stat(path)
	return err == nil && os.SameFile(held, now)
}

// WriteFileAtomic writes data to path (mode 0600) through a temp file and a
// rename: readers see the old or the new file, never half of one.
func WriteFileAtomic(path string, data []byte) error { return WriteFileAtomicMode(path, data, 0o600) }

// WriteFileAtomicMode is WriteFileAtomic with the file's mode.
func WriteFileAtomicMode(path string, data []byte, mode os.FileMode) error {
	return writeFileAtomic(path, data, mode, false)
}

// writeFileAtomic is WriteFileAtomicMode; lock holds an flock on the temp
// file from its creation until it is renamed (or removed).
func writeFileAtomic(path string, data []byte, mode os.FileMode, lock bool) error {
	return writeFile(path, data, mode, lock, true)
}

// writeFile is writeFileAtomic; sync false skips the fsync before the
// rename, for a file that is only a shortcut (after a crash it may be
// empty or old, never a mix: the rename is atomic).
func writeFile(path string, data []byte, mode os.FileMode, lock, sync bool) error {
	return writeFileFrom(path, func(w io.Writer) error { _, err := w.Write(data); return err }, mode, lock, sync)
}

// writeFileFrom is writeFile for content that write writes to the temp
// file.
func writeFileFrom(path string, write func(io.Writer) error, mode os.FileMode, lock, sync bool) error {
	newTemp := func() (*os.File, error) { return os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*") }
	if lock {
		newTemp = func() (*os.File, error) { return lockedTemp(path) }
	}
	tmp, err := newTemp()
	if err != nil {
		return err
	}
	werr := write(tmp)
	merr := tmp.Chmod(mode)
	var serr error
	if sync {
		serr = tmp.Sync()
	}
	if err := errors.Join(werr, merr, serr); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Renamed before it is closed: the lock, if any, is held until then.
	rerr := os.Rename(tmp.Name(), path)
	cerr := tmp.Close()
	if rerr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, rerr)
	}
	if cerr != nil {
		return fmt.Errorf("write %s: %w", path, cerr)
	}
	return nil
}

// lockedTemp creates the temp file of path and flocks it. Another
// process's RemoveTemps that finds it in the instant between its creation
// and the lock takes it for a killed writer's leftover and removes it
// (holding the lock, so the removal is done once this lock is had); a temp
// no longer at its name is let go and another one made, up to
// lockedTempTries times.
func lockedTemp(path string) (*os.File, error) {
	for try := 1; try <= lockedTempTries; try++ {
		tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(tmp.Fd()), syscall.LOCK_EX); err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
			return nil, fmt.Errorf("write %s: lock temp file: %w", path, err)
		}
		if isFileAt(tmp, tmp.Name()) {
			return tmp, nil
		}
		_ = tmp.Close()
	}
	return nil, fmt.Errorf("write %s: its temp file was removed by another process %d times in a row", path, lockedTempTries)
}

// lockedTempTries bounds lockedTemp's attempts; each lost attempt is a
// RemoveTemps of another process in the instant between create and lock.
const lockedTempTries = 100

func (s *Store) writeJSON(name string, v any) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return WriteFileAtomic(filepath.Join(s.Dir, name), data)
}

// readJSON decodes a file; a missing file returns an error that matches
// os.ErrNotExist.
func (s *Store) readJSON(name string, v any) error {
	data, err := os.ReadFile(filepath.Join(s.Dir, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(s.Dir, name), err)
	}
	return nil
}

// WriteSnapshotData stores an encoded snapshot (package state/cluster
// encodes it). It is written without the data directory lock, so its temp
// file is flocked until the rename: RemoveTemps leaves a locked one alone
// (a write in progress).
func (s *Store) WriteSnapshotData(data []byte) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	return writeFileAtomic(s.SnapshotPath(), data, 0o600, true)
}

// WriteSnapshotFrom is WriteSnapshotData for a snapshot that encode writes
// piece by piece (through a buffer), so that its encoding (3.5 MB at
// 10,000 pods) is never held in memory whole.
func (s *Store) WriteSnapshotFrom(encode func(io.Writer) error) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	return writeFileFrom(s.SnapshotPath(), func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		if err := encode(bw); err != nil {
			return err
		}
		return bw.Flush()
	}, 0o600, true, true)
}

// ReadSnapshotData returns the stored snapshot as written (os.ErrNotExist
// when there is none).
func (s *Store) ReadSnapshotData() ([]byte, error) { return os.ReadFile(s.SnapshotPath()) }

// SnapshotPath is the snapshot's file.
func (s *Store) SnapshotPath() string { return filepath.Join(s.Dir, snapshotFile) }

// SnapshotModTime is when the snapshot was last written (os.ErrNotExist
// when there is none).
func (s *Store) SnapshotModTime() (time.Time, error) {
	info, err := os.Stat(filepath.Join(s.Dir, snapshotFile))
	if err != nil {
		return time.Time{}, err
	}
	return info.ModTime(), nil
}

// WriteIndex stores the plugin's index (see EncodeIndex).
func (s *Store) WriteIndex(idx *node.Index) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(s.Dir, indexFile), EncodeIndex(idx))
}

// ReadIndex loads the index (os.ErrNotExist when the agent has not synced).
func (s *Store) ReadIndex() (*node.Index, error) { return s.readIndex("") }

// ReadIndexFor loads the index with only the memberships of one pod
// ("namespace/name"): what ADD needs, parsed in time that does not grow
// with the other pods' entries.
func (s *Store) ReadIndexFor(podKey string) (*node.Index, error) { return s.readIndex(podKey) }

func (s *Store) readIndex(only string) (*node.Index, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, indexFile))
	if err != nil {
		return nil, err
	}
	idx, err := DecodeIndex(data, only)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.Dir, indexFile), err)
	}
	return idx, nil
}

// RemoveAll deletes every file netpol keeps in the data directory (uninstall):
// the state files (and an applied.json left by an older version), the pod
// records and quarantined ones, the lock, the plugin's log and leftover
// temporary files. Anything else found there is not ours and stays; a data
// directory that held only netpol's files is left empty.
func (s *Store) RemoveAll() error {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ours := map[string]bool{snapshotFile: true, indexFile: true, appliedFile: true, podsDir: true, manifestsFile: true,
		lockFile: true, conf.LogFileName: true, statusProbe: true, quarantineDir: true, dropsDir: true, realizedFile: true,
		proofFile: true, expectedFile: true}
	var errs []error
	for _, e := range entries {
		n := e.Name()
		temp := strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-")
		if ours[n] || temp {
			errs = append(errs, os.RemoveAll(filepath.Join(s.Dir, n)))
		}
	}
	return errors.Join(errs...)
}
