package source

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/state"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A DirSource re-decodes only the files that changed, and one started
// later on the same data directory reuses what --once stored (EncodeCache,
// then the write under the lock).
func TestDirSourceDecodesOnlyChangedFiles(t *testing.T) {
	ctx := context.Background()
	dir, store := t.TempDir(), state.New(t.TempDir())
	write(t, dir, "a.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
	write(t, dir, "b.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a, labels: {app: x}}\n")
	load := func(d *DirSource, want manifest.Stats) {
		t.Helper()
		if _, err := d.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if got := d.Stats(); got != want {
			t.Errorf("stats %+v, want %+v", got, want)
		}
	}
	first := &DirSource{Dir: dir, Node: "n", Store: store}
	load(first, manifest.Stats{Files: 2, Read: 2, Decoded: 2})
	persist(t, first)
	if changed, err := first.Changed(ctx); err != nil || changed {
		t.Fatalf("Changed = %v, %v with nothing changed", changed, err)
	}
	write(t, dir, "b.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a, labels: {app: z}}\n")
	if changed, err := first.Changed(ctx); err != nil || !changed {
		t.Fatalf("Changed = %v, %v after a file changed", changed, err)
	}
	// Both files were written just now: both are hashed, one decoded.
	load(first, manifest.Stats{Files: 2, Read: 2, Decoded: 1})

	next := &DirSource{Dir: dir, Node: "n", Store: store}
	load(next, manifest.Stats{Files: 2, Read: 2, Decoded: 1})
	again := &DirSource{Dir: dir, Node: "n", Store: store}
	load(again, manifest.Stats{Files: 2, Read: 2, Decoded: 1}) // next did not persist
	persist(t, next)
	last := &DirSource{Dir: dir, Node: "n", Store: store}
	load(last, manifest.Stats{Files: 2, Read: 2})
}

// A watched DirSource signals a file renamed into its directory at once,
// and reports it changed until it is loaded; a write through a symbolic
// link to a file elsewhere, which inotify does not see, is still found by
// the fingerprint within fullCheckEvery.
func TestDirSourceWatch(t *testing.T) {
	ctx := context.Background()
	dir, elsewhere := t.TempDir(), t.TempDir()
	write(t, dir, "a.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
	write(t, elsewhere, "b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n")
	if err := os.Symlink(filepath.Join(elsewhere, "b.yaml"), filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	d := &DirSource{Dir: dir, Node: "n"}
	defer d.Close()
	if _, err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	notify := d.Notify()
	if notify == nil {
		t.Skip("inotify not available")
	}
	changed := func() bool {
		t.Helper()
		c, err := d.Changed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if changed() { // the first check after the watch began compares fingerprints
		t.Fatal("Changed with nothing changed")
	}
	if changed() {
		t.Fatal("Changed with nothing changed, watched")
	}
	write(t, elsewhere, "c.tmp", "apiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n")
	if err := os.Rename(filepath.Join(elsewhere, "c.tmp"), filepath.Join(dir, "c.yaml")); err != nil {
		t.Fatal(err)
	}
	if !changed() {
		t.Fatal("a file renamed in: not changed")
	}
	select {
	case <-notify:
	case <-time.After(10 * time.Second):
		t.Fatal("a file renamed in: no signal")
	}
	snap, err := d.Load(ctx)
	if err != nil || len(snap.Namespaces) != 3 {
		t.Fatalf("Load = %v namespaces, %v; want 3", snap, err)
	}
	if changed() {
		t.Fatal("Changed right after Load")
	}
	write(t, elsewhere, "b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: b, labels: {x: y}}\n")
	deadline := time.Now().Add(fullCheckEvery + 10*time.Second)
	for !changed() {
		if time.Now().After(deadline) {
			t.Fatal("a write through a symbolic link: never changed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A manifests.cache that is cut short, damaged or of the old JSON format
// is ignored whole: the process decodes every file, and loads the same
// snapshot as with no cache at all (never a world with files missing).
func TestDirSourceIgnoresBadCache(t *testing.T) {
	ctx := context.Background()
	dir, store := t.TempDir(), state.New(t.TempDir())
	write(t, dir, "a.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
	write(t, dir, "b.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a, labels: {app: x}}\n")
	write(t, dir, "c.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: d, namespace: a}\nspec: {podSelector: {}}\n")
	first := &DirSource{Dir: dir, Node: "n", Store: store}
	want, err := first.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	persist(t, first)
	path := filepath.Join(store.Dir, "manifests.cache")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 1
	for name, data := range map[string][]byte{
		"good":      good,
		"cut short": good[:len(good)*2/3],
		"damaged":   flipped,
		"version 1": []byte(`{"version":1,"node":"n","files":[{"name":"a.yaml","sum":"00"}]}`),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		d := &DirSource{Dir: dir, Node: "n", Store: store}
		got, err := d.Load(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: the snapshot differs from the one loaded without a cache:\n%s", name, cmp.Diff(want, got))
		}
		decoded := 3
		if name == "good" {
			decoded = 0
		}
		if st := d.Stats(); st.Decoded != decoded {
			t.Errorf("%s: decoded %d files, want %d", name, st.Decoded, decoded)
		}
	}
}

// persist stores what d's last Load decoded, as --once does after its sync.
func persist(t *testing.T, d *DirSource) {
	t.Helper()
	data, err := d.EncodeCache()
	if err == nil && data != nil {
		err = d.Store.WriteManifestCacheData(data)
	}
	if err != nil {
		t.Fatal(err)
	}
}
