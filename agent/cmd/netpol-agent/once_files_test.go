package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/state"
)

// applyKernel is a Kernel whose Apply returns err and that holds nothing
// to read back.
type applyKernel struct{ err error }

func (k *applyKernel) Apply(context.Context, []ipt.Ruleset) error { return k.err }
func (k *applyKernel) ApplyChange(context.Context, []ipt.Ruleset, []ipt.Ruleset) error {
	return ipt.ErrNoChange
}
func (k *applyKernel) Diff(context.Context, *ipt.Ruleset) ([]string, error) { return nil, nil }
func (k *applyKernel) Usable(context.Context, ipt.Family) error             { return nil }
func (k *applyKernel) Uninstall(context.Context) error                      { return nil }
func (k *applyKernel) Forget()                                              {}

// onceIn runs manifestsOnce on the manifests of testdata "mixed" with
// data directory dir and a kernel whose Apply returns applyErr.
func onceIn(t *testing.T, dir string, applyErr error) int {
	t.Helper()
	a := &agent.Agent{Store: state.New(dir), Kernel: &applyKernel{applyErr}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return manifestsOnce(context.Background(), a, &options{manifests: "../../manifest/testdata/mixed", node: "node-1"}, a.Log)
}

// TestOnceStoresTheCacheOnlyAfterItsSync: the manifest cache, encoded
// while the sync commits, is stored only when the sync succeeded; then the
// next run decodes nothing.
func TestOnceStoresTheCacheOnlyAfterItsSync(t *testing.T) {
	dir := t.TempDir()
	st := state.New(dir)
	if rc := onceIn(t, dir, errors.New("the kernel refused")); rc != 1 {
		t.Fatalf("manifestsOnce with a failing Apply = %d, want 1", rc)
	}
	if _, err := os.Stat(st.ManifestCachePath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after a failed sync the manifest cache is there (stat: %v); want none", err)
	}
	if rc := onceIn(t, dir, nil); rc != 0 {
		t.Fatalf("manifestsOnce = %d, want 0", rc)
	}
	for _, name := range []string{filepath.Base(st.ManifestCachePath()), filepath.Base(st.SnapshotPath()), "expected.json", "realized.json"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("after a sync, %s: %v (size %d); want it written", name, err, sizeOf(fi))
		}
	}
	src := &source.DirSource{Dir: "../../manifest/testdata/mixed", Node: "node-1", Store: st}
	if _, err := src.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := src.Stats(); got.Decoded != 0 || got.Files == 0 {
		t.Errorf("the run after a stored cache: %+v; want every file reused, none decoded", got)
	}
}

// TestOnceSnapshotWriteFailureFails: a snapshot that cannot be written
// (its path taken by a directory) fails the run, though the other files of
// the sync are written beside it.
func TestOnceSnapshotWriteFailureFails(t *testing.T) {
	dir := t.TempDir()
	st := state.New(dir)
	if err := os.MkdirAll(filepath.Join(st.SnapshotPath(), "taken"), 0o700); err != nil {
		t.Fatal(err)
	}
	if rc := onceIn(t, dir, nil); rc != 1 {
		t.Fatalf("manifestsOnce with an unwritable snapshot = %d, want 1", rc)
	}
	if _, err := os.Stat(st.ManifestCachePath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a failed sync the manifest cache is there (stat: %v); want none", err)
	}
	for _, name := range []string{"expected.json", "realized.json"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("after a commit whose snapshot was not stored, %s: %v (size %d); want it written", name, err, sizeOf(fi))
		}
	}
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return -1
	}
	return fi.Size()
}
