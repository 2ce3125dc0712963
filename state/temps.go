package state

import (
	"errors"
	"fmt"
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
			switch {
			case !isTemp(e.Name()) || e.IsDir():
			case dir == s.Dir && behindTemp(e.Name()):
				errs = append(errs, removeDeadTemp(filepath.Join(dir, e.Name())))
			default:
				errs = append(errs, os.Remove(filepath.Join(dir, e.Name())))
			}
		}
	}
	return errors.Join(errs...)
}

// isTemp reports whether name is the temp file of an atomic write.
func isTemp(name string) bool { return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") }

// behindTemp reports whether name, in the data directory, is the temp file
// of the snapshot or of expected.json, written without the data-dir lock.
func behindTemp(name string) bool {
	return strings.HasPrefix(name, "."+snapshotFile+".tmp-") || strings.HasPrefix(name, "."+expectedFile+".tmp-")
}

// removeDeadTemp removes the temp file at path unless its writer holds its
// flock (a write in progress). It removes it while holding that lock
// itself, so a writer that created it but had not locked it yet finds it
// gone once it has the lock (lockedTemp), and makes another; a file
// already renamed or removed is no error.
func removeDeadTemp(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		return nil
	} else if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
