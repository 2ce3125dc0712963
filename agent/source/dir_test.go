package source

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// A watched directory that is deleted and made again, or moved away and
// back, is watched again (the safety-net poll tries once a fullCheckEvery),
// and a later change is signalled through the watch on the channel Notify
// returned at the start, not found by comparing fingerprints.
func TestDirSourceWatchesTheDirectoryAgain(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	ns := func(name string) string { return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + "}\n" }
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "a.yaml", ns("a"))
	d := &DirSource{Dir: dir, Node: "n"}
	defer d.Close()
	if _, err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	notify := d.Notify()
	if notify == nil {
		t.Skip("inotify not available")
	}
	watching := func() bool { return d.watch != nil && !d.watch.broken.Load() }
	// waitFor takes signals until cond holds (bounded: a missing event fails).
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for !cond() {
			select {
			case <-notify:
			case <-timeout:
				t.Fatalf("%s: no such event within 10s", what)
			}
		}
	}
	for i, away := range []struct {
		name string
		gone func() error
		back func() error
	}{
		{"deleted and made again", func() error { return os.RemoveAll(dir) }, func() error {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(ns("a")), 0o644)
		}},
		{"moved away and back", func() error { return os.Rename(dir, dir+".away") }, func() error { return os.Rename(dir+".away", dir) }},
	} {
		if !watching() {
			t.Fatalf("%s: not watching before the directory went", away.name)
		}
		if err := away.gone(); err != nil {
			t.Fatal(err)
		}
		waitFor(away.name+": the watch ending", func() bool { return !watching() })
		_, _ = d.Changed(ctx) // Dir is missing: an error, and no watch yet
		if watching() {
			t.Fatalf("%s: watching a directory that is not there", away.name)
		}
		if err := away.back(); err != nil {
			t.Fatal(err)
		}
		// The safety-net poll: Changed is called once a Poll by the agent;
		// here as often as it takes, at most fullCheckEvery plus 10s.
		deadline := time.Now().Add(fullCheckEvery + 10*time.Second)
		for !watching() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the directory is back, but it is not watched again", away.name)
			}
			if _, err := d.Changed(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := d.Load(ctx); err != nil {
			t.Fatal(err)
		}
		// The new watch is the one that sees a file renamed in.
		name := filepath.Join(parent, "x.tmp")
		if err := os.WriteFile(name, []byte(ns("x"+string(rune('0'+i)))), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(name, filepath.Join(dir, "x.yaml")); err != nil {
			t.Fatal(err)
		}
		waitFor(away.name+": a file renamed in after", d.watch.pending)
		if !watching() {
			t.Fatalf("%s: the watch ended again", away.name)
		}
		snap, err := d.Load(ctx)
		if err != nil || len(snap.Namespaces) != 2 {
			t.Fatalf("%s: Load = %v, %v; want 2 namespaces", away.name, snap, err)
		}
	}
}
