package state

import (
	"errors"
	"os"
	"path/filepath"
)

// proofFile holds the kernel edge's proof that the rules in force are the
// ones a read-back verified (ipt.Runner.HoldsProven): a shortcut for the
// next first sync, never more. A missing, stale or foreign proof only
// makes that sync read the rules back.
const proofFile = "rules-proof"

// ReadRulesProof returns the stored rules proof, "" when there is none or
// it cannot be read.
func (s *Store) ReadRulesProof() string {
	data, err := os.ReadFile(filepath.Join(s.Dir, proofFile))
	if err != nil {
		return ""
	}
	return string(data)
}

// WriteRulesProof stores proof; "" removes the stored one.
func (s *Store) WriteRulesProof(proof string) error {
	path := filepath.Join(s.Dir, proofFile)
	if proof == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := s.Ensure(); err != nil {
		return err
	}
	return WriteFileAtomic(path, []byte(proof))
}
