package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// RemoveTemps deletes the temporary files of atomic writes (".NAME.tmp-*")
// in the data directory and among the pod records. Every writer but one
// holds the lock while it writes, so a caller holding the lock finds only
// the leftovers of a writer that was killed between creating its temp file
// and renaming it. The exception is the agent's snapshot, written without
// the lock (ADD and DEL never read it; a running agent writes it behind its
// syncs), and expected.json, written the same way: their writers hold an
// flock on the temp file until the rename, so such a temp that is locked
// is a write in progress (of this process or another, a --once run beside
// a running agent) and stays, and one that is not is a killed writer's
// leftover (the kernel drops a dead process's locks).
func (s *Store) RemoveTemps() error {
	var errs []error
	for _, dir := range []string{s.Dir, filepath.Join(s.Dir, podsDir)} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if isTemp(e.Name()) && !e.IsDir() && !liveSnapshotTemp(dir, dir == s.Dir, e) {
				errs = append(errs, os.Remove(filepath.Join(dir, e.Name())))
			}
		}
	}
	return errors.Join(errs...)
}

// isTemp reports whether name is the temp file of an atomic write.
func isTemp(name string) bool { return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") }

// liveSnapshotTemp reports whether e, in the data directory (top), is the
// temp file of the snapshot or of expected.json whose writer still holds
// its lock.
func liveSnapshotTemp(dir string, top bool, e os.DirEntry) bool {
	if !top || !strings.HasPrefix(e.Name(), "."+snapshotFile+".tmp-") && !strings.HasPrefix(e.Name(), "."+expectedFile+".tmp-") {
		return false
	}
	f, err := os.Open(filepath.Join(dir, e.Name()))
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB), syscall.EWOULDBLOCK)
}
