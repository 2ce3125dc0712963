package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/netpol/netpol/agent/health"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/state"
)

// slowDiffKernel is a fakeKernel whose Diff reports a difference in the
// IPv4 ruleset; the first one blocks until released.
type slowDiffKernel struct {
	fakeKernel
	entered chan struct{} // a Diff started
	release chan struct{} // closed: the held Diff returns
	diffs   int           // read-backs started (IPv4 Diffs)
	atApply []int         // diffs at each Apply
}

func (k *slowDiffKernel) Apply(context.Context, []ipt.Ruleset) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.applies++
	k.atApply = append(k.atApply, k.diffs)
	return nil
}

func (k *slowDiffKernel) Diff(ctx context.Context, rs *ipt.Ruleset) ([]string, error) {
	if rs.Family != ipt.IPv4 {
		return nil, nil
	}
	k.mu.Lock()
	k.diffs++
	first := k.diffs == 1
	k.mu.Unlock()
	if first {
		k.entered <- struct{}{}
		select {
		case <-k.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return []string{"set NETPOL4-X missing"}, nil
}

// TestRunSyncsDuringReadBack: a change is synced while a read-back of the
// kernel is in flight (the read-back runs beside the loop), the drift that
// read-back reports is dropped because a sync committed meanwhile (it may
// be that sync's own change), and a later read-back that overlaps no sync
// repairs (applies everything again).
func TestRunSyncsDuringReadBack(t *testing.T) {
	k := &slowDiffKernel{entered: make(chan struct{}), release: make(chan struct{})}
	a := &Agent{Store: state.New(t.TempDir()), Kernel: k, Log: slog.New(slog.DiscardHandler), LockTimeout: time.Second,
		Status: &health.Status{}}
	src := &fakeSource{notify: make(chan struct{}, 1), ready: true, snap: snapshot("a"), changed: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx, src, RunOptions{Poll: time.Hour, RepairEvery: 50 * time.Millisecond, Debounce: time.Millisecond})
	}()
	defer func() { cancel(); <-done }()
	waitUntil(t, "first sync", func() bool { return k.count() == 1 })
	select {
	case <-k.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no read-back within 5s")
	}
	src.set(true, snapshot("b"))
	waitUntil(t, "the change synced while the read-back is held", func() bool { return k.count() == 2 })
	close(k.release)
	// The held read-back's drift is dropped; the next one repairs.
	waitUntil(t, "a repair after a read-back that overlapped no sync", func() bool { return k.count() >= 3 })
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.atApply[2] < 2 {
		t.Errorf("repaired after %d read-back(s); the first overlapped a sync and must not repair", k.atApply[2])
	}
}
