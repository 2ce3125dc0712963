package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/policy/testsnap"
)

// copyDir copies the regular files of src into a new directory, dated an
// hour ago (so that a Load right after can trust their stat).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeOld(t, filepath.Join(dst, e.Name()), string(data))
	}
	return dst
}

// writeOld writes a file dated an hour ago.
func writeOld(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// loadStats loads dir with c, checks the snapshot against a fresh Load and
// the stats against want.
func loadStats(t *testing.T, c *Cache, dir string, want Stats) {
	t.Helper()
	got, err := c.Load(dir)
	if err != nil {
		t.Fatalf("Cache.Load: %v", err)
	}
	fresh, err := Load(dir, "node-1")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if d := cmp.Diff(fresh, got); d != "" {
		t.Errorf("Cache.Load differs from a fresh Load (-fresh +cache):\n%s", d)
	}
	if c.Stats() != want {
		t.Errorf("stats %+v, want %+v", c.Stats(), want)
	}
}

// A file is decoded again only when its content changed; one whose stat is
// unchanged is not even read.
func TestCacheDecodesOnlyChangedFiles(t *testing.T) {
	dir := copyDir(t, "testdata/mixed")
	c := NewCache("node-1")
	loadStats(t, c, dir, Stats{Files: 3, Read: 3, Decoded: 3})
	loadStats(t, c, dir, Stats{Files: 3})

	pods := filepath.Join(dir, "20-pods.json")
	data, err := os.ReadFile(pods)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(data), `"role": "db"`, `"role": "db2"`, 1)
	if changed == string(data) {
		t.Fatal("testdata/mixed/20-pods.json has no role=db label to change")
	}
	writeOld(t, pods, changed)
	loadStats(t, c, dir, Stats{Files: 3, Read: 1, Decoded: 1})
	if s, _ := c.Load(dir); s.Pods[1].Labels["role"] != "db2" {
		t.Errorf("changed label not loaded: %v", s.Pods[1].Labels)
	}

	// Rewritten with the same content: read and hashed, not decoded.
	writeOld(t, pods, changed)
	loadStats(t, c, dir, Stats{Files: 3, Read: 1})
	// Written just now: its stat cannot prove it unchanged at the next Load.
	if err := os.WriteFile(pods, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	loadStats(t, c, dir, Stats{Files: 3, Read: 1})
	loadStats(t, c, dir, Stats{Files: 3, Read: 1})

	if err := os.Remove(pods); err != nil {
		t.Fatal(err)
	}
	loadStats(t, c, dir, Stats{Files: 2})
}

// The files stored by one process are reused by the next: not even read
// when their stat is as stored, by content hash when it is not; those of
// another node are not.
func TestCacheSeed(t *testing.T) {
	dir := copyDir(t, "testdata/mixed")
	first := NewCache("node-1")
	if _, err := first.Load(dir); err != nil {
		t.Fatal(err)
	}
	stored := first.Stored()
	if len(stored.Files) != 3 {
		t.Fatalf("stored %d files, want 3", len(stored.Files))
	}
	next := NewCache("node-1")
	next.Seed(stored)
	loadStats(t, next, dir, Stats{Files: 3})

	writeOld(t, filepath.Join(dir, "10-namespaces.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n")
	pods := filepath.Join(dir, "20-pods.json")
	data, err := os.ReadFile(pods)
	if err != nil {
		t.Fatal(err)
	}
	writeOld(t, pods, string(data)) // the same content, another modification time
	next = NewCache("node-1")
	next.Seed(stored)
	loadStats(t, next, dir, Stats{Files: 3, Read: 2, Decoded: 1})

	// Stored without the stat (by an older build, say): read and hashed.
	for i := range stored.Files {
		stored.Files[i].ReadAt = 0
	}
	next = NewCache("node-1")
	next.Seed(stored)
	loadStats(t, next, dir, Stats{Files: 3, Read: 3, Decoded: 1})

	other := NewCache("node-2")
	other.Seed(stored)
	if _, err := other.Load(dir); err != nil {
		t.Fatal(err)
	}
	if got := other.Stats(); got.Decoded != 3 {
		t.Errorf("a cache of node-1 seeded node-2's: %+v", got)
	}
}

// Decoding in parallel still reports the first failing file in name order,
// and a failed Load leaves the cache as it was.
func TestCacheErrorsInNameOrder(t *testing.T) {
	dir := copyDir(t, "testdata/mixed")
	c := NewCache("node-1")
	loadStats(t, c, dir, Stats{Files: 3, Read: 3, Decoded: 3})
	for _, name := range []string{"05-bad.yaml", "25-bad.yaml", "40-bad.yaml"} {
		writeOld(t, filepath.Join(dir, name), "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {nodeNmae: n}\n")
	}
	for range 5 {
		_, err := c.Load(dir)
		if err == nil || !strings.Contains(err.Error(), "05-bad.yaml: document 1: kind Pod: ") {
			t.Fatalf("error %v, want one naming 05-bad.yaml", err)
		}
	}
	for _, name := range []string{"05-bad.yaml", "25-bad.yaml", "40-bad.yaml"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	loadStats(t, c, dir, Stats{Files: 3})
}

// The YAML the agent benchmarks write loads to the snapshot testsnap says.
func TestCacheLoadsGeneratedYAML(t *testing.T) {
	cfg := testsnap.Config{Seed: 3, Node: "node-1", Nodes: 4, Namespaces: 6, Pods: 200, LocalPods: 10, Policies: 40}
	cluster := testsnap.Generate(cfg)
	dir := t.TempDir()
	names, err := cluster.WriteYAMLManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3*cfg.Namespaces {
		t.Errorf("%d files, want %d", len(names), 3*cfg.Namespaces)
	}
	got, err := NewCache("node-1").Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(cluster.Snapshot(), got); d != "" {
		t.Errorf("loaded YAML differs from the cluster's snapshot (-want +got):\n%s", d)
	}
}

// Objects seeded from a cache that this same program stored are taken as
// valid (it validated them); those of a cache stored by another program
// are validated again.
func TestCacheSeedTrustsOnlyItsOwnValidation(t *testing.T) {
	dir := copyDir(t, "testdata/mixed")
	first := NewCache("node-1")
	if _, err := first.Load(dir); err != nil {
		t.Fatal(err)
	}
	stored := first.Stored()
	if stored.Validator == "" || stored.Validator != validatorKey() {
		t.Fatalf("stored validator %q, want this program's %q", stored.Validator, validatorKey())
	}
	// A pod made invalid in the cache: only validation can tell.
	for i := range stored.Files {
		for j := range stored.Files[i].Pods {
			stored.Files[i].Pods[j].IPs = []string{"not an IP"}
		}
	}
	trusting := NewCache("node-1")
	trusting.Seed(stored)
	if _, err := trusting.Load(dir); err != nil {
		t.Errorf("seeded by this program: %v, want its objects taken as valid", err)
	}
	stored.Validator = "exe:another"
	checking := NewCache("node-1")
	checking.Seed(stored)
	if _, err := checking.Load(dir); err == nil || !strings.Contains(err.Error(), "not an IP") {
		t.Errorf("seeded by another program: %v, want the invalid IP found", err)
	}
}

// A process seeded from the cache decodes only the changed document of a
// changed file: the others are those the cache stored. Documents whose
// stored counts do not add up to the file's objects are not reused.
func TestCacheSeedReusesDocuments(t *testing.T) {
	cluster := testsnap.Generate(testsnap.Config{Seed: 3, Node: "node-1", Nodes: 4, Namespaces: 2, Pods: 40, LocalPods: 4, Policies: 6})
	dir := t.TempDir()
	names, err := cluster.WriteYAMLManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	dir = copyDir(t, dir) // dated an hour ago
	first := NewCache("node-1")
	if _, err := first.Load(dir); err != nil {
		t.Fatal(err)
	}
	stored := first.Stored()
	name := names[1] // the first namespace's first pods
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "  labels:\n", "  labels:\n    edited: \"yes\"\n", 1)
	writeOld(t, path, edited)

	next := NewCache("node-1")
	next.Seed(stored)
	seeded := map[*docObjects]bool{}
	for _, u := range next.files[name].units {
		seeded[u] = true
	}
	if len(seeded) < 2 {
		t.Fatalf("%s seeded with %d documents", name, len(seeded))
	}
	loadStats(t, next, dir, Stats{Files: len(names), Read: 1, Decoded: 1})
	units := next.files[name].units
	reused := 0
	for _, u := range units {
		if seeded[u] {
			reused++
		}
	}
	if reused != len(units)-1 {
		t.Errorf("%d of %d documents reused from the cache, want all but the edited one", reused, len(units))
	}

	for i := range stored.Files {
		if stored.Files[i].Name == name {
			stored.Files[i].Docs[0].Pods++ // one pod too many
		}
	}
	bad := NewCache("node-1")
	bad.Seed(stored)
	if bad.files[name].units != nil {
		t.Errorf("documents that do not add up were seeded")
	}
	loadStats(t, bad, dir, Stats{Files: len(names), Read: 1, Decoded: 1})
}

// A file rewritten in place with content of the same size and its
// modification time set back to what it was (touch -d, cp -p, rsync
// --inplace -t) is read again: its change time moved. Both a running
// Cache and one seeded from what it stored see the new content.
func TestCacheSeesEditWithModTimeSetBack(t *testing.T) {
	dir := copyDir(t, "testdata/mixed")
	pods := filepath.Join(dir, "20-pods.json")
	data, err := os.ReadFile(pods)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(pods)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache("node-1")
	loadStats(t, c, dir, Stats{Files: 3, Read: 3, Decoded: 3})
	stored := c.Stored()

	changed := strings.Replace(string(data), `"role": "db"`, `"role": "dx"`, 1)
	if changed == string(data) || len(changed) != len(data) {
		t.Fatal("testdata/mixed/20-pods.json has no role=db label to change in place")
	}
	if err := os.WriteFile(pods, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(pods, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	seeded := NewCache("node-1")
	seeded.Seed(stored)
	for name, cache := range map[string]*Cache{"running": c, "seeded": seeded} {
		s, err := cache.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Pods[1].Labels["role"]; got != "dx" {
			t.Errorf("%s cache: role=%q after an edit with the modification time set back, want dx", name, got)
		}
	}
}
