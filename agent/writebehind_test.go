package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/state"
	"github.com/netpol/netpol/state/cluster"
)

// holdingKernel is a fakeKernel that, read back, holds whatever it is
// asked about.
type holdingKernel struct{ fakeKernel }

func (k *holdingKernel) Holds(context.Context, []ipt.Ruleset) ([]string, error) { return nil, nil }

// An agent killed after a commit and before its snapshot was written
// behind leaves the stored snapshot of the sync before: the next agent's
// first sync of the new view does not take it as in force, however the
// kernel reads back, and applies everything; with the snapshot written,
// it is in force.
func TestWriteBehindCrashIsRewritten(t *testing.T) {
	ctx := context.Background()
	st := state.New(t.TempDir())
	newAgent := func() (*Agent, *holdingKernel) {
		k := &holdingKernel{}
		return &Agent{Store: st, Kernel: k, Log: slog.New(slog.DiscardHandler), LockTimeout: time.Second}, k
	}
	older, newer := snapshot("a"), snapshot("b")
	first, _ := newAgent()
	if _, err := first.Sync(ctx, older); err != nil {
		t.Fatal(err)
	}
	first.WriteBehind = true
	if _, err := first.Sync(ctx, newer); err != nil {
		t.Fatal(err)
	}
	first.writer.flush()
	if err := cluster.WriteSnapshot(st, older); err != nil { // the write that never happened
		t.Fatal(err)
	}

	next, k := newAgent()
	res, err := next.Sync(ctx, newer)
	if err != nil {
		t.Fatal(err)
	}
	if res.InForce || k.count() != 1 {
		t.Errorf("first sync after the crash: in force %v, %d applies; want not in force, 1 apply", res.InForce, k.count())
	}
	again, k := newAgent()
	if res, err := again.Sync(ctx, newer); err != nil || !res.InForce || k.count() != 0 {
		t.Errorf("with the snapshot stored: in force %v, %d applies, %v; want in force, no apply", res.InForce, k.count(), err)
	}
}

// A burst of snapshots handed to the writer leaves the last one stored once
// flush returns, however many of the others were skipped.
func TestWriteBehindLastWins(t *testing.T) {
	st := state.New(t.TempDir())
	a := &Agent{Store: st, Log: slog.New(slog.DiscardHandler)}
	for i := range 50 {
		a.writeSnapshotBehind(snapshot(fmt.Sprintf("ns%d", i)))
	}
	a.writer.flush()
	got, err := cluster.ReadSnapshot(st)
	if err != nil || got.Namespaces[0].Name != "ns49" {
		t.Fatalf("stored %v, %v; want the last snapshot handed over (ns49)", got, err)
	}
}

// The files written behind a sync are encoded and written on a thread at
// BackgroundNice, so that a CNI ADD starting meanwhile is not kept off the
// CPU by them: each save sees its own thread's nice value in
// /proc/thread-self/stat, for the first write and for one after a wait.
func TestWriteBehindRunsNiced(t *testing.T) {
	if n := threadNice(t); n >= BackgroundNice {
		t.Skipf("the test runs at nice %d already", n)
	}
	var w behindWriter[int]
	var got []int
	for i := range 2 {
		w.write(&i, 10*time.Millisecond, func(*int) { got = append(got, threadNice(t)) })
		w.flush()
	}
	if len(got) != 2 || got[0] != BackgroundNice || got[1] != BackgroundNice {
		t.Errorf("writes behind ran at nice %v, want %d each", got, BackgroundNice)
	}
}

// threadNice is the nice value of the calling thread (field 19 of
// /proc/thread-self/stat).
func threadNice(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // from field 3 on
	n, err := strconv.Atoi(f[16])
	if err != nil {
		t.Fatalf("/proc/thread-self/stat: nice %q", f[16])
	}
	return n
}
