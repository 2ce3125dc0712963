package state

import (
	"fmt"
	"time"
)

// realizedFile records, per NetworkPolicy, the version the kernel holds.
const realizedFile = "realized.json"

// RealizedVersion is 1; readers reject others.
const RealizedVersion = 1

// Realized is the NetworkPolicy versions in force on this node: written by
// the agent after the kernel committed a sync, read by `netpol-agent status`
// and `netpol-agent wait`.
type Realized struct {
	Version  int              `json:"version"`
	Policies []PolicyRealized `json:"policies"`
}

// PolicyRealized is one NetworkPolicy in force: its version (the
// resourceVersion from the API, "sha256:..." of the object from a manifest
// directory), when the agent received that version and when the kernel
// committed the rules that enforce it.
type PolicyRealized struct {
	Policy   string    `json:"policy"` // namespace/name
	Version  string    `json:"version"`
	Received time.Time `json:"received"`
	Realized time.Time `json:"realized"`
}

// WriteRealized stores r atomically.
func (s *Store) WriteRealized(r *Realized) error {
	r.Version = RealizedVersion
	return s.writeJSON(realizedFile, r)
}

// ReadRealized loads what WriteRealized stored (os.ErrNotExist before the
// first sync).
func (s *Store) ReadRealized() (*Realized, error) {
	var r Realized
	if err := s.readJSON(realizedFile, &r); err != nil {
		return nil, err
	}
	if r.Version != RealizedVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", realizedFile, r.Version, RealizedVersion)
	}
	return &r, nil
}
