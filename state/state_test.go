package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state/cluster"
)

func TestAttachmentsRoundTripAndRemove(t *testing.T) {
	s := New(t.TempDir())
	a := &policy.Attachment{ContainerID: "c1", IfName: "eth0", Namespace: "default", Name: "db", IPs: []string{"10.244.1.2"}}
	b := &policy.Attachment{ContainerID: "c0", IfName: "net1", Namespace: "default", Name: "db", IPs: []string{"fd00::2"}}
	for _, x := range []*policy.Attachment{a, b} {
		if err := s.WriteAttachment(x); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := s.Attachments()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]policy.Attachment{*b, *a}, got); d != "" {
		t.Errorf("attachments, sorted by container ID (-want +got):\n%s", d)
	}
	if err := s.RemoveAttachment("c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAttachment("c1", "eth0"); err != nil {
		t.Errorf("removing a missing record must succeed (DEL is idempotent): %v", err)
	}
	if _, err := s.ReadAttachment("c1", "eth0"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read after remove: %v, want not-exist", err)
	}
}

// Container IDs and interface names come from the runtime: they must never
// name a file outside the pods directory.
func TestRecordNamesRejectUntrustedStrings(t *testing.T) {
	s := New(t.TempDir())
	for _, bad := range []struct{ id, ifName string }{
		{"../../etc/passwd", "eth0"},
		{"c1", "../x"},
		{"c1/x", "eth0"},
		{"", "eth0"},
		{"c1", "averyveryverylongname"},
		{"c 1", "eth0"},
	} {
		err := s.WriteAttachment(&policy.Attachment{ContainerID: bad.id, IfName: bad.ifName})
		if err == nil {
			t.Errorf("container %q interface %q accepted", bad.id, bad.ifName)
		}
	}
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		if e.Name() != "pods" {
			t.Errorf("unexpected file %s in the data dir", e.Name())
		}
	}
}

func TestLockExcludesAndTimesOut(t *testing.T) {
	s := New(t.TempDir())
	unlock, err := s.Lock(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Lock(context.Background(), 100*time.Millisecond); err == nil {
		t.Fatal("a second holder got the lock")
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("gave up after %v, before the timeout", waited)
	}
	released := make(chan time.Time, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		released <- time.Now()
		unlock()
	}()
	second, err := s.Lock(context.Background(), 5*time.Second)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	second()
	if at := <-released; time.Since(at) > 2*time.Second {
		t.Errorf("took %v to get the lock after it was released", time.Since(at))
	}
}

// A waiter whose context ends (the agent got SIGTERM) stops waiting at once.
func TestLockWaitEndsWithContext(t *testing.T) {
	s := New(t.TempDir())
	unlock, err := s.Lock(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if _, err := s.Lock(ctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("lock with a cancelled context: %v, want context.Canceled", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("waited %v after the context ended", waited)
	}
}

func TestWriteFileAtomicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snapshot.json")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(path)
	entries, _ := os.ReadDir(dir)
	if string(got) != "two" || len(entries) != 1 {
		t.Errorf("content %q, files %d: want the last write and no temp file", got, len(entries))
	}
}

func TestRemoveAllEmptiesTheDirectory(t *testing.T) {
	s := New(t.TempDir())
	_ = s.WriteAttachment(&policy.Attachment{ContainerID: "c1", IfName: "eth0"})
	_ = cluster.WriteSnapshot(s, &policy.Snapshot{Version: policy.SnapshotVersion})
	_ = s.WriteExpected("sum", []byte("[]"))
	// An older version's record of its chains is netpol's too.
	if err := os.WriteFile(filepath.Join(s.Dir, "applied.json"), []byte(`{"chains":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAll(); err != nil {
		t.Errorf("second RemoveAll: %v", err)
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	if _, err := cluster.ReadSnapshot(s); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("snapshot after RemoveAll: %v", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "snapshot.json"), []byte(`{"version":99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.ReadSnapshot(s); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("a snapshot of another version must be refused, got %v", err)
	}
}

// openFDsOf counts this process's descriptors open on path.
func openFDsOf(t *testing.T, path string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && target == path {
			n++
		}
	}
	return n
}

// Uninstall unlinks the lock file while holding it. A waiter that opened the
// old file must not take its flock as "the lock" while another process holds
// the new file's: two holders at once.
func TestLockSurvivesUnlinkWhileHeld(t *testing.T) {
	s := New(t.TempDir())
	first, err := s.Lock(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waiter := make(chan func(), 1)
	go func() {
		unlock, err := s.Lock(context.Background(), 30*time.Second)
		if err != nil {
			t.Errorf("waiter: %v", err)
			unlock = func() {}
		}
		waiter <- unlock
	}()
	lockPath := filepath.Join(s.Dir, lockFile)
	for i := 0; openFDsOf(t, lockPath) < 2; i++ { // the waiter has opened the file
		if i > 1000 {
			t.Fatal("the waiter never opened the lock file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.RemoveAll(); err != nil { // what uninstall does, holding the lock
		t.Fatal(err)
	}
	third, err := s.Lock(context.Background(), time.Second) // a new process: a new lock file
	if err != nil {
		t.Fatal(err)
	}
	first()
	select {
	case unlock := <-waiter:
		unlock()
		t.Fatal("the waiter got the lock while another process held it")
	case <-time.After(time.Second):
	}
	third()
	select {
	case unlock := <-waiter:
		unlock()
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the lock after it was released")
	}
}
