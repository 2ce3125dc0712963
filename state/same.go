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
	want, err := json.Marshal(snap)
	if err != nil {
		return false
	}
	return s.hasFile(snapshotFile, want)
}

// HasIndex reports whether the stored index is idx, byte for byte as
// WriteIndex would write it (false when it cannot tell).
func (s *Store) HasIndex(idx *policy.Index) bool { return s.hasFile(indexFile, EncodeIndex(idx)) }

func (s *Store) hasFile(name string, want []byte) bool {
	have, err := os.ReadFile(filepath.Join(s.Dir, name))
	return err == nil && bytes.Equal(have, want)
}
