// Package cluster encodes the files of the data directory that hold
// Kubernetes objects: snapshot.json (policy.Snapshot) and manifests.cache.
// It reads and writes them through a state.Store (Files), which stores
// them as bytes, so that package state, which the CNI plugin imports,
// links no Kubernetes package. The plugin never reads these files; the
// agent does.
package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/policy"
)

// Files is what this package needs of a state.Store.
type Files interface {
	ReadSnapshotData() ([]byte, error)
	WriteSnapshotData(data []byte) error
	HasSnapshotData(data []byte) bool
	SnapshotPath() string
	ReadManifestCacheData() ([]byte, error)
	WriteManifestCacheData(data []byte) error
	ManifestCachePath() string
}

// WriteSnapshot stores the snapshot (see state.Store.WriteSnapshotData).
func WriteSnapshot(st Files, snap *policy.Snapshot) error {
	data, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("encode %s: %w", st.SnapshotPath(), err)
	}
	return st.WriteSnapshotData(data)
}

// ReadSnapshot loads the snapshot (os.ErrNotExist when there is none); a
// snapshot of another version than policy.SnapshotVersion is an error.
func ReadSnapshot(st Files) (*policy.Snapshot, error) {
	data, err := st.ReadSnapshotData()
	if err != nil {
		return nil, err
	}
	var snap policy.Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("%s: %w", st.SnapshotPath(), err)
	}
	if snap.Version != policy.SnapshotVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", st.SnapshotPath(), snap.Version, policy.SnapshotVersion)
	}
	return &snap, nil
}

// HasSnapshot reports whether the stored snapshot is snap, byte for byte
// as WriteSnapshot would write it (false when it cannot tell).
func HasSnapshot(st Files, snap *policy.Snapshot) bool {
	same, _ := CompareSnapshot(st, snap)
	return same
}

// CompareSnapshot is HasSnapshot, also returning snap encoded as
// WriteSnapshotData takes it when it had to encode it (nil when no
// snapshot is stored: snap is not encoded for nothing).
func CompareSnapshot(st Files, snap *policy.Snapshot) (same bool, encoded []byte) {
	have, err := st.ReadSnapshotData()
	if err != nil {
		return false, nil
	}
	want, err := json.Marshal(snap)
	if err != nil {
		return false, nil
	}
	return bytes.Equal(have, want), want
}

// ManifestCacheVersion is the version of the manifests.cache format; a
// cache of another version is ignored.
const ManifestCacheVersion = 1

// ManifestFile is what the manifest loader made of one file: the SHA-256
// of its content (hex) and the objects converted from it, in file order.
type ManifestFile struct {
	Name       string                       `json:"name"`
	Sum        string                       `json:"sum"`
	Namespaces []policy.Namespace           `json:"namespaces,omitempty"`
	Pods       []policy.Pod                 `json:"pods,omitempty"`
	Policies   []networkingv1.NetworkPolicy `json:"policies,omitempty"`
}

// ManifestCache is the decoded content of a manifest directory for one
// node (a pod without spec.nodeName is that node's).
type ManifestCache struct {
	Version int            `json:"version"`
	Node    string         `json:"node"`
	Files   []ManifestFile `json:"files"`
}

// WriteManifestCache stores c (see state.Store.WriteManifestCacheData).
func WriteManifestCache(st Files, c *ManifestCache) error {
	c.Version = ManifestCacheVersion
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode %s: %w", st.ManifestCachePath(), err)
	}
	return st.WriteManifestCacheData(data)
}

// ReadManifestCache loads the cache; an error (os.ErrNotExist when there is
// none) means there is nothing to reuse. A cache is only ever a shortcut:
// its files are reused by content hash, and the snapshot made of them is
// validated as any other.
func ReadManifestCache(st Files) (*ManifestCache, error) {
	data, err := st.ReadManifestCacheData()
	if err != nil {
		return nil, err
	}
	var c ManifestCache
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", st.ManifestCachePath(), err)
	}
	if c.Version != ManifestCacheVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", st.ManifestCachePath(), c.Version, ManifestCacheVersion)
	}
	return &c, nil
}
