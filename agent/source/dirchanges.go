package source

import "time"

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
