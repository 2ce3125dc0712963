package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state/cluster"
)

// racyWindow: a file whose modification time is this close to the moment it
// was read may have changed again within the same tick of the clock, with
// the same size; such a file is hashed again rather than trusted by stat.
const racyWindow = 2 * time.Second

// Cache loads a manifest directory again and again, decoding only the files
// that changed since the last Load. A file is unchanged when its size,
// modification time and inode are those of the last Load (and it was read
// well after it was last modified), or else when its content has the same
// SHA-256 as the file of that name last decoded (or seeded). The files that
// did change are decoded in parallel, each document of theirs only when its
// bytes changed. The snapshot is made of every file's objects in name
// order; a Load validates the pods and policies of the files it decoded,
// and the namespaces and the uniqueness of names of the whole, which is
// what policy.ValidateSnapshot would find (validate).
type Cache struct {
	node  string
	files map[string]*cached // by file name, as of the last successful Load
	stats Stats
	// last is the snapshot's objects as of the last successful Load, nil
	// before one (or after Seed): a Load patches them with the objects of
	// the changed files' changed documents (patch) instead of sorting and
	// validating every object again.
	last *sortedObjects
	// patched: the last Load patched last (for tests).
	patched bool
}

// Stats says what the last Load of a Cache did.
type Stats struct {
	Files   int // manifest files in the directory
	Decoded int // of them, decoded (new or changed content)
	Read    int // of them, read and hashed (stat could not prove them unchanged)
}

// cached is one file as last loaded.
type cached struct {
	size   int64
	mtime  time.Time
	ctime  int64 // Unix nanoseconds
	ino    uint64
	readAt time.Time // zero for a seeded file: trusted by hash only
	file   cluster.ManifestFile
	docs   docSums // its documents' objects (nil for a seeded file)
	// units are its documents' objects in file order (nil for a seeded
	// file until units makes one unit of all its objects).
	units []*docObjects
	// valid: every namespace, pod and policy of the file passed
	// policy.ValidateNamespace, ValidatePod and ValidatePolicy.
	valid bool
}

// NewCache returns an empty cache for node (a pod without spec.nodeName is
// node's).
func NewCache(node string) *Cache { return &Cache{node: node, files: map[string]*cached{}} }

// Seed makes the files of c (stored by an earlier process) reusable as
// those of an earlier Load: by stat when the file's is as stored (and it
// was read well after it was last modified), else by content hash. A
// cache of another node is ignored. Its objects are
// taken as valid when this same program stored them (Validator), and
// validated at the next Load otherwise.
func (c *Cache) Seed(stored *cluster.ManifestCache) {
	if stored == nil || stored.Node != c.node {
		return
	}
	c.last = nil // the next Load builds the snapshot whole
	key := validatorKey()
	valid := key != "" && stored.Validator == key
	for _, f := range stored.Files {
		if _, ok := c.files[f.Name]; !ok {
			e := &cached{file: f, valid: valid, size: f.Size, mtime: time.Unix(0, f.ModTime), ctime: f.CTime, ino: f.Inode}
			if f.ReadAt != 0 {
				e.readAt = time.Unix(0, f.ReadAt) // else trusted by hash only
			}
			e.units, e.docs = seededDocs(&f, valid)
			e.file.Size, e.file.ModTime, e.file.CTime, e.file.Inode, e.file.ReadAt, e.file.Docs = 0, 0, 0, 0, 0, nil
			c.files[f.Name] = e
		}
	}
}

// Stored returns the files of the last successful Load, to be persisted
// (cluster.EncodeManifestCache, then state.Store.WriteManifestCacheData)
// and seeded into a later process's Cache.
func (c *Cache) Stored() *cluster.ManifestCache {
	// Every object of the last successful Load was validated (validate).
	out := &cluster.ManifestCache{Version: cluster.ManifestCacheVersion, Node: c.node, Validator: validatorKey()}
	for _, name := range sortedKeys(c.files) {
		if e := c.files[name]; !e.readAt.IsZero() {
			f := e.file
			f.Size, f.ModTime, f.CTime, f.Inode, f.ReadAt = e.size, e.mtime.UnixNano(), e.ctime, e.ino, e.readAt.UnixNano()
			if e.docs != nil {
				f.Docs = storedDocs(e.units)
			}
			out.Files = append(out.Files, f)
		}
	}
	return out
}

// Versions returns the version of every file of the last successful Load,
// by name: "sha256:" and the first 16 hex digits of its content's SHA-256,
// the hash Load already computed (no file is read again).
func (c *Cache) Versions() map[string]string {
	out := make(map[string]string, len(c.files))
	for name, e := range c.files {
		out[name] = "sha256:" + e.file.Sum[:min(16, len(e.file.Sum))]
	}
	return out
}

// Stats reports what the last Load did.
func (c *Cache) Stats() Stats { return c.stats }

// Load reads dir as the package-level Load does, reusing what it can. On
// error the cache is left as it was. The snapshot's slices are shared with
// the cache (a later Load builds new ones): the caller must not modify them.
func (c *Cache) Load(dir string) (*policy.Snapshot, error) {
	files, err := manifestFiles(dir)
	if err != nil {
		return nil, err
	}
	stats := Stats{Files: len(files)}
	next := make(map[string]*cached, len(files))
	var todo []*pending
	for _, f := range files {
		name := filepath.Base(f.path)
		if e := c.files[name]; e != nil && e.sameStat(f.info) {
			next[name] = e
			continue
		}
		stats.Read++
		data, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("manifests: %w", err)
		}
		sum := sha256.Sum256(data)
		e := &cached{size: f.info.Size(), mtime: f.info.ModTime(), ctime: ctime(f.info), ino: inode(f.info), readAt: time.Now()}
		e.file.Name, e.file.Sum = name, hex.EncodeToString(sum[:])
		old := c.files[name]
		if old != nil && old.file.Sum == e.file.Sum {
			e.file, e.docs, e.units, e.valid = old.file, old.docs, old.units, old.valid
		} else {
			p := &pending{path: f.path, data: data, into: e}
			if old != nil {
				p.old = old.docs
			}
			todo = append(todo, p)
		}
		next[name] = e
	}
	stats.Decoded = len(todo)
	if err := c.decode(todo); err != nil {
		return nil, err
	}
	if c.last != nil {
		if s, last, ok := c.patch(next); ok {
			c.files, c.stats, c.last, c.patched = next, stats, last, true
			return s, nil
		}
	}
	s, last, err := c.build(next)
	if err != nil {
		return nil, fmt.Errorf("manifests in %s: %w", dir, err)
	}
	c.files, c.stats, c.last, c.patched = next, stats, last, false
	return s, nil
}

// build makes the snapshot of files whole: every file's objects in name
// order, sorted (Builder.Snapshot) and validated (validate).
func (c *Cache) build(files map[string]*cached) (*policy.Snapshot, *sortedObjects, error) {
	b := NewBuilder(c.node)
	for _, name := range sortedKeys(files) {
		f := &files[name].file
		b.namespaces = append(b.namespaces, f.Namespaces...)
		b.pods = append(b.pods, f.Pods...)
		b.policies = append(b.policies, f.Policies...)
	}
	s := b.Snapshot()
	if err := validate(s, files); err != nil {
		return nil, nil, err
	}
	declared := slices.Clone(b.namespaces)
	slices.SortStableFunc(declared, func(x, y policy.Namespace) int { return namespaceOrder(&x, &y) })
	return s, &sortedObjects{declared: declared, pods: s.Pods, policies: s.Policies}, nil
}

// pending is a file to decode.
type pending struct {
	path string
	data []byte
	old  docSums // the documents of the file's last version
	into *cached
	err  error
}

// decode decodes the pending files on a bounded pool of workers (one per
// CPU the process may use), the garbage collector loosened meanwhile
// (loosenGC), and returns the error of the first failing file in name
// order, the error a sequential Load would have returned.
func (c *Cache) decode(todo []*pending) error {
	if len(todo) == 0 {
		return nil
	}
	var input int64
	for _, p := range todo {
		input += int64(len(p.data))
	}
	defer loosenGC(input)()
	work := make(chan *pending)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				b := NewBuilder(c.node)
				docs, units, err := b.addData(p.path, p.data, p.old)
				if p.err = err; err == nil {
					f := &p.into.file
					f.Namespaces, f.Pods, f.Policies = b.namespaces, b.pods, b.policies
					p.into.docs, p.into.units, p.into.valid = docs, units, unitsValid(units)
				}
				p.data, p.old = nil, nil
			}
		}()
	}
	for _, p := range todo {
		work <- p
	}
	close(work)
	wg.Wait()
	for _, p := range todo {
		if p.err != nil {
			return p.err
		}
	}
	return nil
}

// sameStat reports whether info shows the file as it was when e was read,
// and e was read long enough after its last modification for that to prove
// its content unchanged. The change time is compared too: a write whose
// modification time was set back (touch -d, cp -p, rsync --inplace -t)
// moves it, and it cannot be set back.
func (e *cached) sameStat(info os.FileInfo) bool {
	return !e.readAt.IsZero() && e.size == info.Size() && e.mtime.Equal(info.ModTime()) &&
		e.ctime == ctime(info) && e.ino == inode(info) && e.readAt.Sub(e.mtime) > racyWindow
}

// validatorKey names this program for cluster.ManifestCache.Validator: the
// path, size, inode, and modification and change times of its executable
// (the change time moves with any write to the file, and cannot be set
// back), so that a cache stored by another build of the agent, whose
// validation may differ, is validated again. "" when it cannot be known.
func validatorKey() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	info, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("exe:%s:%d:%d:%d:%d.%d:%d.%d", exe, st.Dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

// ctime returns the change time of info's file in Unix nanoseconds (0 when
// unknown).
func ctime(info os.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano()
	}
	return 0
}

// inode returns the inode number of info's file (0 when unknown).
func inode(info os.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
