package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/netpol/netpol/agent/health"
	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
	"github.com/netpol/netpol/state/cluster"
)

// fakeKernel records what Apply was given.
type fakeKernel struct {
	mu      sync.Mutex
	applies int
}

func (k *fakeKernel) Apply(context.Context, []ipt.Ruleset) error {
	k.mu.Lock()
	k.applies++
	k.mu.Unlock()
	return nil
}
func (k *fakeKernel) Diff(context.Context, *ipt.Ruleset) ([]string, error) { return nil, nil }
func (k *fakeKernel) Uninstall(context.Context) error                      { return nil }
func (k *fakeKernel) Forget()                                              {}
func (k *fakeKernel) Usable(context.Context, ipt.Family) error             { return nil }

func (k *fakeKernel) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.applies
}

// fakeSource is not ready until ready is closed, then serves snap and
// signals on notify.
type fakeSource struct {
	mu      sync.Mutex
	ready   bool
	snap    *policy.Snapshot
	loads   int
	changed bool
	notify  chan struct{}
}

func (s *fakeSource) Load(context.Context) (*policy.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	if !s.ready {
		return nil, fmt.Errorf("%w: API down", source.ErrNotReady)
	}
	s.changed = false
	return s.snap, nil
}

func (s *fakeSource) Changed(context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready && s.changed, nil
}

func (s *fakeSource) Notify() <-chan struct{} { return s.notify }

func (s *fakeSource) set(ready bool, snap *policy.Snapshot) {
	s.mu.Lock()
	s.ready, s.snap, s.changed = ready, snap, true
	s.mu.Unlock()
	s.notify <- struct{}{}
}

func snapshot(ns string) *policy.Snapshot {
	return &policy.Snapshot{Version: policy.SnapshotVersion, Node: "n",
		Namespaces: []policy.Namespace{{Name: ns, Labels: map[string]string{"kubernetes.io/metadata.name": ns}}}}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not within 5s", what)
}

// TestRunStoredThenSource: with the source not ready at start, Run enforces
// the stored snapshot and is not ready; once the source signals, it loads
// within the debounce (not the hour-long poll) and is ready.
func TestRunStoredThenSource(t *testing.T) {
	st := state.New(t.TempDir())
	if err := cluster.WriteSnapshot(st, snapshot("stored")); err != nil {
		t.Fatal(err)
	}
	k := &fakeKernel{}
	a := &Agent{Store: st, Kernel: k, Log: slog.New(slog.DiscardHandler), LockTimeout: time.Second, Status: &health.Status{}}
	src := &fakeSource{notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- a.Run(ctx, src, RunOptions{Poll: time.Hour, RepairEvery: time.Hour, Debounce: 10 * time.Millisecond})
	}()

	waitUntil(t, "stored snapshot synced", func() bool { return k.count() == 1 })
	if a.Status.Ready() {
		t.Error("ready while enforcing the stored snapshot")
	}
	if a.Status.CurrentAsOf().IsZero() {
		t.Error("CurrentAsOf is zero with a stored snapshot enforced")
	}

	src.set(true, snapshot("live"))
	waitUntil(t, "source's snapshot synced", func() bool { return a.Status.Ready() })
	// The snapshot is written behind the sync.
	waitUntil(t, "source's snapshot stored", func() bool {
		got, err := cluster.ReadSnapshot(st)
		return err == nil && got.Namespaces[0].Name == "live"
	})
	applies := k.count()
	src.set(true, snapshot("live2"))
	waitUntil(t, "a change synced", func() bool { return k.count() > applies })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Run returns after the last snapshot was written.
	got, err := cluster.ReadSnapshot(st)
	if err != nil || got.Namespaces[0].Name != "live2" {
		t.Errorf("stored snapshot after Run = %v, %v; want the last synced", got, err)
	}
}

// TestRunNoStoredSnapshot: not ready and nothing stored: nothing is
// applied (the plugin fails closed on its own) until the source is ready.
func TestRunNoStoredSnapshot(t *testing.T) {
	k := &fakeKernel{}
	a := &Agent{Store: state.New(t.TempDir()), Kernel: k, Log: slog.New(slog.DiscardHandler), LockTimeout: time.Second}
	src := &fakeSource{notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx, src, RunOptions{Poll: 20 * time.Millisecond, RepairEvery: time.Hour})
	}()
	defer func() { cancel(); <-done }() // Run writes to the data dir until it returns
	time.Sleep(100 * time.Millisecond)
	if k.count() != 0 {
		t.Fatalf("%d applies with no snapshot anywhere", k.count())
	}
	src.set(true, snapshot("live"))
	waitUntil(t, "source's snapshot synced", func() bool { return k.count() == 1 })
}

// ApplyChange of the fake declines: syncs go through Apply.
func (k *fakeKernel) ApplyChange(context.Context, []ipt.Ruleset, []ipt.Ruleset) error {
	return ipt.ErrNoChange
}

// TestRunLoneChangeAtOnce: a signalled change is loaded at once, not
// after the debounce (an hour here, as the poll), which only gathers the
// signals that follow it.
func TestRunLoneChangeAtOnce(t *testing.T) {
	k := &fakeKernel{}
	a := &Agent{Store: state.New(t.TempDir()), Kernel: k, Log: slog.New(slog.DiscardHandler), LockTimeout: time.Second,
		Status: &health.Status{}}
	src := &fakeSource{notify: make(chan struct{}, 1), ready: true, snap: snapshot("first")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- a.Run(ctx, src, RunOptions{Poll: time.Hour, RepairEvery: time.Hour, Debounce: time.Hour})
	}()
	waitUntil(t, "first snapshot synced", func() bool { return a.Status.Ready() })
	applies := k.count()
	src.set(true, snapshot("second"))
	waitUntil(t, "a lone change synced", func() bool { return k.count() > applies })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
