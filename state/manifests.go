package state

import (
	"os"
	"path/filepath"
)

// manifestsFile caches what `--manifests` made of each file, so that a
// later run decodes only the files whose content changed.
const manifestsFile = "manifests.cache"

// WriteManifestCacheData stores an encoded manifest cache (package
// state/cluster encodes it). It is not fsynced: a cache lost or cut short
// by a crash only makes the next run decode the files again (an unreadable
// cache is ignored, and a file is reused only by the SHA-256 of its
// content).
func (s *Store) WriteManifestCacheData(data []byte) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	return writeFile(s.ManifestCachePath(), data, 0o600, false, false)
}

// ReadManifestCacheData returns the stored manifest cache as written
// (os.ErrNotExist when there is none).
func (s *Store) ReadManifestCacheData() ([]byte, error) { return os.ReadFile(s.ManifestCachePath()) }

// ManifestCachePath is the manifest cache's file.
func (s *Store) ManifestCachePath() string { return filepath.Join(s.Dir, manifestsFile) }
