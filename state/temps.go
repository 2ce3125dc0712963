package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// RemoveTemps deletes the temporary files of atomic writes (".NAME.tmp-*")
// in the data directory and among the pod records. Every writer holds the
// lock while it writes, so a caller holding the lock finds only the
// leftovers of a writer that was killed between creating its temp file and
// renaming it.
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
			if isTemp(e.Name()) && !e.IsDir() {
				errs = append(errs, os.Remove(filepath.Join(dir, e.Name())))
			}
		}
	}
	return errors.Join(errs...)
}

// isTemp reports whether name is the temp file of an atomic write.
func isTemp(name string) bool { return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") }
