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
	"io"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/policy"
)

// Files is what this package needs of a state.Store.
type Files interface {
	ReadSnapshotData() ([]byte, error)
	WriteSnapshotData(data []byte) error
	WriteSnapshotFrom(encode func(io.Writer) error) error
	SnapshotPath() string
	ReadManifestCacheData() ([]byte, error)
	WriteManifestCacheData(data []byte) error
	ManifestCachePath() string
}

// WriteSnapshot stores the snapshot (see state.Store.WriteSnapshotData),
// encoded as it goes (encodeSnapshot).
func WriteSnapshot(st Files, snap *policy.Snapshot) error {
	return st.WriteSnapshotFrom(func(w io.Writer) error { return encodeSnapshot(w, snap) })
}

// encodeSnapshot writes json.Marshal(snap), byte for byte, one namespace,
// pod and policy at a time. A running agent writes its snapshot after
// syncs; json.Marshal of a 10,000-pod snapshot (3.5 MB) held its buffer
// (grown by doubling, and kept in encoding/json's pool afterwards) and a
// copy of it, ~10 MB of the agent's heap in API mode.
// TestEncodeSnapshotIsMarshal holds it to json.Marshal, field by field of
// policy.Snapshot.
func encodeSnapshot(w io.Writer, snap *policy.Snapshot) error {
	e := &jsonStream{w: w}
	e.raw(`{"version":`)
	e.value(snap.Version)
	e.raw(`,"node":`)
	e.value(snap.Node)
	e.raw(`,"namespaces":`)
	streamArray(e, snap.Namespaces)
	e.raw(`,"pods":`)
	streamArray(e, snap.Pods)
	e.raw(`,"policies":`)
	streamArray(e, snap.Policies)
	if snap.Audit {
		e.raw(`,"audit":true`)
	}
	if snap.DropLog != nil {
		e.raw(`,"dropLog":`)
		e.value(snap.DropLog)
	}
	e.raw(`}`)
	return e.err
}

// jsonStream writes JSON to w piece by piece, keeping the first error.
type jsonStream struct {
	w   io.Writer
	err error
}

func (e *jsonStream) raw(s string) {
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}

func (e *jsonStream) value(v any) {
	if e.err != nil {
		return
	}
	var b []byte
	if b, e.err = json.Marshal(v); e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

// streamArray writes v as json.Marshal would (nil as null), an element at
// a time.
func streamArray[T any](e *jsonStream, v []T) {
	if v == nil {
		e.raw("null")
		return
	}
	e.raw("[")
	for i := range v {
		if i > 0 {
			e.raw(",")
		}
		e.value(&v[i])
	}
	e.raw("]")
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

// ManifestCacheVersion is the version of the manifests.cache format
// (encodeManifestCache); a cache of another version or format (version 1
// was JSON) is ignored.
const ManifestCacheVersion = 3

// ManifestFile is what the manifest loader made of one file: the SHA-256
// of its content (hex) and the objects converted from it, in file order.
type ManifestFile struct {
	Name string `json:"name"`
	Sum  string `json:"sum"`
	// Size, ModTime and CTime (Unix nanoseconds) and Inode are the file's
	// stat when it was read, at ReadAt (Unix nanoseconds; 0: unknown): a later
	// process may take the file as unchanged by its stat, as the loader
	// that read it would.
	Size    int64  `json:"size,omitempty"`
	ModTime int64  `json:"modTime,omitempty"`
	CTime   int64  `json:"cTime,omitempty"`
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

// EncodeManifestCache encodes c at this version, for
// state.Store.WriteManifestCacheData (not fsynced: a cache lost or cut
// short only makes the next run decode the files again).
func EncodeManifestCache(c *ManifestCache) ([]byte, error) {
	c.Version = ManifestCacheVersion
	data, err := encodeManifestCache(c)
	if err != nil {
		return nil, fmt.Errorf("encode the manifest cache: %w", err)
	}
	return data, nil
}

// ReadManifestCache loads the cache; an error (os.ErrNotExist when there is
// none) means there is nothing to reuse: a cache of another format or
// version, damaged or cut short is refused whole, never read in part. A
// cache is only ever a shortcut: its files are reused by stat or content
// hash (see manifest.Cache.Seed).
func ReadManifestCache(st Files) (*ManifestCache, error) {
	data, err := st.ReadManifestCacheData()
	if err != nil {
		return nil, err
	}
	c, err := decodeManifestCache(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", st.ManifestCachePath(), err)
	}
	return c, nil
}
