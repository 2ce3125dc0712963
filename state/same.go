package state

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/netpol/netpol/policy"
)

// HasSnapshot reports whether the stored snapshot is snap, byte for byte
// as WriteSnapshot would write it (false when it cannot tell).
func (s *Store) HasSnapshot(snap *policy.Snapshot) bool {
	same, _ := s.CompareSnapshot(snap)
	return same
}

// CompareSnapshot is HasSnapshot, also returning snap encoded as
// WriteSnapshotData takes it when it had to encode it (nil when no
// snapshot is stored: snap is not encoded for nothing).
func (s *Store) CompareSnapshot(snap *policy.Snapshot) (same bool, encoded []byte) {
	have, err := os.ReadFile(filepath.Join(s.Dir, snapshotFile))
	if err != nil {
		return false, nil
	}
	want, err := json.Marshal(snap)
	if err != nil {
		return false, nil
	}
	return bytes.Equal(have, want), want
}

// HasIndex reports whether the stored index is idx, byte for byte as
// WriteIndex would write it (false when it cannot tell).
func (s *Store) HasIndex(idx *policy.Index) bool { return s.hasFile(indexFile, EncodeIndex(idx)) }

func (s *Store) hasFile(name string, want []byte) bool {
	have, err := os.ReadFile(filepath.Join(s.Dir, name))
	return err == nil && bytes.Equal(have, want)
}
