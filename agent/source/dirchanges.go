package source

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fileHashes returns "sha256:<16 hex>" of the content of every manifest
// file (*.yaml, *.yml, *.json) of dir, by name. A file that cannot be read
// is left out (Load reports it).
func fileHashes(dir string) map[string]string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") || strings.HasSuffix(n, ".json")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		sum := sha256.Sum256(data)
		out[n] = "sha256:" + hex.EncodeToString(sum[:8])
	}
	return out
}

// noteChanges records, as received at when, every file whose hash differs
// from the last Load's (added, changed or removed).
func (d *DirSource) noteChanges(hashes map[string]string, when time.Time) {
	for n, h := range hashes {
		if d.hashes[n] != h {
			d.received = append(d.received, Change{Object: "file " + n, Version: h, Received: when})
		}
	}
	for n := range d.hashes {
		if _, ok := hashes[n]; !ok {
			d.received = append(d.received, Change{Object: "file " + n, Received: when})
		}
	}
	d.hashes = hashes
}

// TakeReceived returns the files the last Loads found added, changed or
// removed, each with when a change was first noticed (source.Receiver).
func (d *DirSource) TakeReceived() []Change {
	out := d.received
	d.received = nil
	return out
}
