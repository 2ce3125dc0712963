package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/state"
)

// detectKernel is a Kernel whose Detect runs until its context ends, as a
// detection (iptables-legacy-save runs) does on a slow node.
type detectKernel struct {
	agent.Kernel // nil: manifestsOnce must not reach the sync here
	running      atomic.Int32
}

func (k *detectKernel) Detect(ctx context.Context) (ipt.Mode, error) {
	k.running.Add(1)
	defer k.running.Add(-1)
	<-ctx.Done()
	return "", ctx.Err()
}

// TestOnceInvalidInputLeavesNoDetection: when the manifests do not load,
// manifestsOnce stops the backend detection it started beside the load and
// waits for it, so that none is left running (with its iptables-save
// processes) when it returns.
func TestOnceInvalidInputLeavesNoDetection(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("kind: Nope\napiVersion: v9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &detectKernel{}
	a := &agent.Agent{Store: state.New(t.TempDir()), Kernel: k, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if rc := manifestsOnce(ctx, a, &options{manifests: dir, node: "n"}, a.Log); rc != 1 {
		t.Fatalf("manifestsOnce = %d, want 1 (invalid input)", rc)
	}
	// The detection's goroutine may not have been scheduled yet: watch it,
	// bounded (1 s), for running after manifestsOnce returned.
	for range 100 {
		if n := k.running.Load(); n != 0 {
			t.Fatalf("manifestsOnce returned with %d detection(s) still running", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
