package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RemoveTemps deletes the temporary files of atomic writes (".NAME.tmp-*")
// in the data directory and among the pod records. Every writer but one
// holds the lock while it writes, so a caller holding the lock finds only
// the leftovers of a writer that was killed between creating its temp file
// and renaming it. The exception is the agent's snapshot, written after
// the sync released the lock (ADD and DEL never read it): a snapshot temp
// younger than snapshotTempGrace may be another agent process's write in
// progress (a --once run beside a running agent), and is left for a later
// sync.
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
			if isTemp(e.Name()) && !e.IsDir() && !liveSnapshotTemp(dir == s.Dir, e) {
				errs = append(errs, os.Remove(filepath.Join(dir, e.Name())))
			}
		}
	}
	return errors.Join(errs...)
}

// isTemp reports whether name is the temp file of an atomic write.
func isTemp(name string) bool { return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") }

// snapshotTempGrace is how long a snapshot temp file may be a write in
// progress (see RemoveTemps): a write takes well under a second.
const snapshotTempGrace = time.Minute

// liveSnapshotTemp reports whether e, in the data directory (top), is a
// snapshot temp file too young to be a leftover.
func liveSnapshotTemp(top bool, e os.DirEntry) bool {
	if !top || !strings.HasPrefix(e.Name(), "."+snapshotFile+".tmp-") {
		return false
	}
	info, err := e.Info()
	return err == nil && time.Since(info.ModTime()) < snapshotTempGrace
}
