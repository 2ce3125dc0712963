package state

import (
	"bytes"
	"os"
	"path/filepath"

	"github.com/netpol/netpol/policy/node"
)

// HasIndex reports whether the stored index is idx, byte for byte as
// WriteIndex would write it (false when it cannot tell).
func (s *Store) HasIndex(idx *node.Index) bool { return s.hasFile(indexFile, EncodeIndex(idx)) }

func (s *Store) hasFile(name string, want []byte) bool {
	have, err := os.ReadFile(filepath.Join(s.Dir, name))
	return err == nil && bytes.Equal(have, want)
}
