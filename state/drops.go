package state

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// dropsDir holds the drop records: drops.log, and drops.log.1 .. .N, each
// older than the one before. The agent appends to drops.log (the one file
// of the data directory that is not replaced atomically: a reader may see a
// last line half written, and skips it) and rotates it when it would pass
// its size bound.
const (
	dropsDir  = "drops"
	dropsFile = "drops.log"
)

// DropRecord is one packet netpol dropped, as the agent read it from the
// kernel's NFLOG group: one JSON line of the drop log.
type DropRecord struct {
	Time      time.Time    `json:"time"`
	Direction string       `json:"direction"` // ingress or egress: whose policy dropped it
	Path      string       `json:"path"`      // bridged (same node, through the bridge) or routed
	Protocol  string       `json:"protocol"`  // TCP, UDP, SCTP, ICMP, ...
	Src       DropEndpoint `json:"src"`
	Dst       DropEndpoint `json:"dst"`
	Verdict   string       `json:"verdict"`  // drop
	Reason    string       `json:"reason"`   // "no policy allows it", "pod not known yet"
	Policies  []string     `json:"policies"` // namespace/name of the policies selecting the isolated pod
}

// DropEndpoint is one end of a dropped packet.
type DropEndpoint struct {
	IP   string `json:"ip"`
	Port int    `json:"port,omitempty"`
	Pod  string `json:"pod,omitempty"` // namespace/name when the address is a pod's
}

// Involves reports whether pod (namespace/name) is either end of r.
func (r *DropRecord) Involves(pod string) bool { return r.Src.Pod == pod || r.Dst.Pod == pod }

// DropWriter appends drop records to the drop log, keeping it under a size
// bound by rotation. It is safe for concurrent use.
type DropWriter struct {
	mu       sync.Mutex
	dir      string
	maxBytes int64
	keep     int
	f        *os.File
	size     int64
}

// OpenDropLog opens the drop log for appending. When drops.log would pass
// maxBytes it becomes drops.log.1 (and .1 becomes .2, up to keep old files;
// the oldest is removed), so the records take at most (keep+1)*maxBytes.
func (s *Store) OpenDropLog(maxBytes int64, keep int) (*DropWriter, error) {
	if maxBytes < 1024 || keep < 1 {
		return nil, fmt.Errorf("drop log: size %d (at least 1024) and files kept %d (at least 1)", maxBytes, keep)
	}
	w := &DropWriter{dir: filepath.Join(s.Dir, dropsDir), maxBytes: maxBytes, keep: keep}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return nil, err
	}
	return w, w.open()
}

func (w *DropWriter) open() error {
	f, err := os.OpenFile(filepath.Join(w.dir, dropsFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Write appends r as one line.
func (w *DropWriter) Write(r *DropRecord) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size > 0 && w.size+int64(len(line)) > w.maxBytes {
		if err := w.rotate(); err != nil {
			return fmt.Errorf("rotate drop log: %w", err)
		}
	}
	n, err := w.f.Write(line)
	w.size += int64(n)
	return err
}

// rotate shifts drops.log.N-1 to .N ... drops.log to .1 and starts anew.
func (w *DropWriter) rotate() error {
	w.f.Close()
	path := filepath.Join(w.dir, dropsFile)
	_ = os.Remove(path + "." + strconv.Itoa(w.keep))
	for i := w.keep - 1; i >= 1; i-- {
		_ = os.Rename(path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(path, path+".1"); err != nil {
		return err
	}
	return w.open()
}

// Close closes the drop log.
func (w *DropWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// ReadDrops calls fn for every drop record on disk, oldest first. A line
// that is not a record (the half-written last one) is skipped.
func (s *Store) ReadDrops(fn func(*DropRecord)) error {
	path := filepath.Join(s.Dir, dropsDir, dropsFile)
	old, _ := filepath.Glob(path + ".*")
	files := make([]string, 0, len(old)+1)
	for i := len(old); i >= 1; i-- {
		files = append(files, path+"."+strconv.Itoa(i))
	}
	files = append(files, path)
	for _, name := range files {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		_, err = readLines(f, fn)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// readLines decodes the complete lines of r and returns the bytes of them
// it consumed (an incomplete last line is left for later).
func readLines(r io.Reader, fn func(*DropRecord)) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var used int64
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return used, nil
		}
		if err != nil {
			return used, err
		}
		used += int64(len(line))
		var rec DropRecord
		if json.Unmarshal(bytes.TrimSpace(line), &rec) == nil {
			fn(&rec)
		}
	}
}

// DropTail is a position at the end of the drop log, from which Follow
// reads what is appended.
type DropTail struct {
	path string
	f    *os.File
	off  int64
}

// TailDrops returns the drop log's current end.
func (s *Store) TailDrops() *DropTail {
	t := &DropTail{path: filepath.Join(s.Dir, dropsDir, dropsFile)}
	if f, err := os.Open(t.path); err == nil {
		t.f = f
		t.off, _ = f.Seek(0, io.SeekEnd)
	}
	return t
}

// Follow calls fn for every record appended to the drop log after the
// tail, following it across rotations, until ctx ends. It polls every
// interval, and closes the tail when it returns.
func (t *DropTail) Follow(ctx context.Context, interval time.Duration, fn func(*DropRecord)) error {
	defer func() {
		if t.f != nil {
			t.f.Close()
		}
	}()
	for {
		if err := t.read(fn); err != nil {
			return err
		}
		// Rotated (another file at path) or not there before: move on to
		// the new file once the old one is read to its end.
		if st, err := os.Stat(t.path); err == nil {
			if fst, ferr := statOf(t.f); ferr != nil || !os.SameFile(st, fst) {
				if g, err := os.Open(t.path); err == nil {
					if err := t.read(fn); err != nil { // what was appended before the rotation
						g.Close()
						return err
					}
					if t.f != nil {
						t.f.Close()
					}
					t.f, t.off = g, 0
					continue
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

func (t *DropTail) read(fn func(*DropRecord)) error {
	if t.f == nil {
		return nil
	}
	n, err := readLines(io.NewSectionReader(t.f, t.off, 1<<62), fn)
	t.off += n
	return err
}

func statOf(f *os.File) (os.FileInfo, error) {
	if f == nil {
		return nil, os.ErrNotExist
	}
	return f.Stat()
}
