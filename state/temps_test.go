package state

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state/cluster"
)

// A writer killed between its temp file and the rename leaves the temp
// behind; RemoveTemps deletes exactly those, in the directory and among the
// pod records.
func TestRemoveTempsDeletesOnlyLeftovers(t *testing.T) {
	s := New(t.TempDir())
	if err := s.WriteAttachment(&policy.Attachment{ContainerID: "c1", IfName: "eth0", Namespace: "default", Name: "db"}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WriteSnapshot(s, &policy.Snapshot{}); err != nil {
		t.Fatal(err)
	}
	records, err := os.ReadDir(filepath.Join(s.Dir, podsDir))
	if err != nil || len(records) != 1 {
		t.Fatalf("records: %v, %v", records, err)
	}
	leftovers := []string{".snapshot.json.tmp-123", ".expected.json.tmp-5", ".index.tmp-9", filepath.Join(podsDir, "."+records[0].Name()+".tmp-77")}
	kept := []string{"not-ours.tmp-1", ".hidden"}
	for _, name := range append(slices.Clone(leftovers), kept...) {
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A snapshot temp is a leftover unless its writer holds its lock: a
	// locked one is a write in progress (written without the data
	// directory lock), and stays.
	// So is one of expected.json, written the same way.
	for _, live := range []string{".snapshot.json.tmp-456", ".expected.json.tmp-7"} {
		f, err := os.OpenFile(filepath.Join(s.Dir, live), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, live)
	}
	if err := s.RemoveTemps(); err != nil {
		t.Fatal(err)
	}
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(s.Dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s: still there (%v)", name, err)
		}
	}
	for _, name := range append(kept, snapshotFile, filepath.Join(podsDir, records[0].Name())) {
		if _, err := os.Stat(filepath.Join(s.Dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := New(filepath.Join(s.Dir, "missing")).RemoveTemps(); err != nil {
		t.Errorf("missing data dir: %v", err)
	}
}

// TestBehindWritesSurviveRemoveTemps: writes of expected.json and the
// snapshot (flocked temp files, no data-dir lock) beside another
// process's RemoveTemps in a loop never fail: RemoveTemps removes a temp
// only while holding its lock, and a writer whose temp was removed before
// it got the lock makes another. Bounded to 3 s and 5,000 writes.
func TestBehindWritesSurviveRemoveTemps(t *testing.T) {
	s := New(t.TempDir())
	if err := s.Ensure(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
				_ = s.RemoveTemps()
				n++
			}
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	var fails, writes int
	var first error
	for writes < 5000 && time.Now().Before(deadline) {
		err := s.WriteExpected("sum", []byte("[]"))
		if writes%2 == 1 {
			err = s.WriteSnapshotData([]byte("{}"))
		}
		if err != nil {
			if first == nil {
				first = err
			}
			fails++
		}
		writes++
	}
	close(stop)
	removes := <-done
	if fails > 0 {
		t.Errorf("%d of %d writes failed beside %d RemoveTemps; first: %v", fails, writes, removes, first)
	}
}
