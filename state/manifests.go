package state

import (
	"fmt"
	"os"
	"path/filepath"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/policy"
)

// manifestsFile caches what `--manifests` made of each file, so that a
// later run decodes only the files whose content changed.
const manifestsFile = "manifests.cache"

// ManifestCacheVersion is the version of the manifests.cache format
// (encodeManifestCache); a cache of another version or format (version 1
// was JSON) is ignored.
const ManifestCacheVersion = 2

// ManifestFile is what the manifest loader made of one file: the SHA-256
// of its content (hex) and the objects converted from it, in file order.
type ManifestFile struct {
	Name string `json:"name"`
	Sum  string `json:"sum"`
	// Size, ModTime (Unix nanoseconds) and Inode are the file's stat when
	// it was read, at ReadAt (Unix nanoseconds; 0: unknown): a later
	// process may take the file as unchanged by its stat, as the loader
	// that read it would.
	Size    int64  `json:"size,omitempty"`
	ModTime int64  `json:"modTime,omitempty"`
	Inode   uint64 `json:"inode,omitempty"`
	ReadAt  int64  `json:"readAt,omitempty"`
	// Docs are the file's documents in order (nil: not known).
	Docs       []ManifestDoc                `json:"docs,omitempty"`
	Namespaces []policy.Namespace           `json:"namespaces,omitempty"`
	Pods       []policy.Pod                 `json:"pods,omitempty"`
	Policies   []networkingv1.NetworkPolicy `json:"policies,omitempty"`
}

// ManifestDoc is one document of a manifest file: the SHA-256 of its
// bytes (32 bytes, not hex) and how many of the file's namespaces, pods and
// policies, in order, are its objects.
type ManifestDoc struct {
	Sum        string `json:"sum"`
	Namespaces int    `json:"namespaces,omitempty"`
	Pods       int    `json:"pods,omitempty"`
	Policies   int    `json:"policies,omitempty"`
}

// ManifestCache is the decoded content of a manifest directory for one
// node (a pod without spec.nodeName is that node's).
type ManifestCache struct {
	Version int    `json:"version"`
	Node    string `json:"node"`
	// Validator, when not empty, says that every object of Files passed
	// validation by the program it names (an opaque key): a reader that is
	// that same program need not validate them again.
	Validator string         `json:"validator,omitempty"`
	Files     []ManifestFile `json:"files"`
}

// WriteManifestCache stores c (atomically, like every file here).
// It is not fsynced: a cache lost or cut short by a crash only makes the
// next run decode the files again (an unreadable cache is ignored, and a
// file is reused only by the SHA-256 of its content).
func (s *Store) WriteManifestCache(c *ManifestCache) error {
	c.Version = ManifestCacheVersion
	if err := s.Ensure(); err != nil {
		return err
	}
	data, err := encodeManifestCache(c)
	if err != nil {
		return fmt.Errorf("encode %s: %w", manifestsFile, err)
	}
	return writeFile(filepath.Join(s.Dir, manifestsFile), data, 0o600, false, false)
}

// ReadManifestCache loads the cache; an error (os.ErrNotExist when there is
// none) means there is nothing to reuse: a cache of another format or
// version, damaged or cut short is refused whole, never read in part. A
// cache is only ever a shortcut: its files are reused by content hash.
func (s *Store) ReadManifestCache() (*ManifestCache, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, manifestsFile))
	if err != nil {
		return nil, err
	}
	c, err := decodeManifestCache(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(s.Dir, manifestsFile), err)
	}
	return c, nil
}
