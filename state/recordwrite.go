package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/netpol/netpol/policy/node"
)

// writeRecord writes a pod record atomically (temp file + rename), like
// WriteFileAtomic but without fsync: ADD pays for a record on every pod
// (an fsync costs ~5 ms, up to tens, on a busy node's disk), and a record
// needs no durability beyond the process: a crashed plugin's write is in
// the page cache, and what only a power loss or a kernel crash can lose
// belongs to pods that did not survive it either (the records are then
// stale, or unusable and quarantined, and the runtime ADDs every pod
// again). The rename still makes a reader see the old or the new record.
func (s *Store) writeRecord(name string, a *node.Attachment) error {
	if err := s.Ensure(); err != nil {
		return err
	}
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	path := filepath.Join(s.Dir, podsDir, name)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
