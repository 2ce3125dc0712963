package source

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/policy"
)

// DirSource is a directory of manifests (see manifest.Load). A change is
// noticed by a fingerprint of the file names, sizes and modification times.
type DirSource struct {
	Dir  string
	Node string
	last [32]byte

	noticed  time.Time         // when Changed first saw the fingerprint move
	hashes   map[string]string // file name -> content hash, at the last Load
	received []Change          // not taken yet (TakeReceived)
}

// Load reads every manifest in the directory.
func (d *DirSource) Load(context.Context) (*policy.Snapshot, error) {
	fp, err := d.fingerprint()
	if err != nil {
		return nil, err
	}
	d.last = fp
	when := d.noticed
	if when.IsZero() {
		when = time.Now()
	}
	d.noticed = time.Time{}
	d.noteChanges(fileHashes(d.Dir), when)
	return manifest.Load(d.Dir, d.Node)
}

// Changed reports whether any manifest was added, removed or modified.
func (d *DirSource) Changed(context.Context) (bool, error) {
	fp, err := d.fingerprint()
	if err != nil {
		return false, err
	}
	if fp != d.last && d.noticed.IsZero() {
		d.noticed = time.Now()
	}
	return fp != d.last, nil
}

func (d *DirSource) fingerprint() ([32]byte, error) {
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		return [32]byte{}, fmt.Errorf("manifests: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		info, err := os.Stat(filepath.Join(d.Dir, n))
		if err != nil {
			continue // removed between ReadDir and Stat: the next poll sees it
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", n, info.Size(), info.ModTime().UnixNano())
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}
