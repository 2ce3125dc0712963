package source

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
// later on the same data directory reuses what --once stored (Persist).
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
	if err := first.Persist(); err != nil {
		t.Fatal(err)
	}
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
	load(again, manifest.Stats{Files: 2, Read: 2, Decoded: 1}) // next did not Persist
	if err := next.Persist(); err != nil {
		t.Fatal(err)
	}
	last := &DirSource{Dir: dir, Node: "n", Store: store}
	load(last, manifest.Stats{Files: 2, Read: 2})
}
