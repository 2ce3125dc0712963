package state

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/policy"
)

// "_" is legal in container IDs and interface names: (a_b, c) and (a, b_c)
// are two attachments and must have two records.
func TestRecordNamesAreInjective(t *testing.T) {
	s := New(t.TempDir())
	x := policy.Attachment{ContainerID: "a_b", IfName: "c", Namespace: "default", Name: "x", IPs: []string{"10.244.1.2"}}
	y := policy.Attachment{ContainerID: "a", IfName: "b_c", Namespace: "default", Name: "y", IPs: []string{"10.244.1.3"}}
	for _, a := range []policy.Attachment{x, y} {
		if err := s.WriteAttachment(&a); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := s.Attachments()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]policy.Attachment{y, x}, got); d != "" {
		t.Errorf("attachments (-want +got):\n%s", d)
	}
	for _, want := range []policy.Attachment{x, y} {
		a, err := s.ReadAttachment(want.ContainerID, want.IfName)
		if err != nil {
			t.Fatalf("read %s/%s: %v", want.ContainerID, want.IfName, err)
		}
		if d := cmp.Diff(want, *a); d != "" {
			t.Errorf("read %s/%s (-want +got):\n%s", want.ContainerID, want.IfName, d)
		}
	}
	if err := s.RemoveAttachment("a", "b_c"); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ReadAttachment("a_b", "c"); err != nil || a.Name != "x" {
		t.Errorf("removing (a, b_c) touched (a_b, c): %v %+v", err, a)
	}
}

// Records written by an older netpol are named ID_IF.json: they are still
// read, listed and removed, so an upgrade loses no pod; a legacy file that
// holds another attachment (the name is ambiguous) is not taken for this one.
func TestLegacyRecordNamesStillRead(t *testing.T) {
	s := New(t.TempDir())
	if err := s.Ensure(); err != nil {
		t.Fatal(err)
	}
	old := policy.Attachment{ContainerID: "a_b", IfName: "c", Namespace: "default", Name: "old", IPs: []string{"10.244.1.9"}}
	if err := s.writeJSON(filepath.Join(podsDir, "a_b_c.json"), &old); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Attachments()
	if err != nil || len(got) != 1 || got[0].Name != "old" {
		t.Fatalf("attachments with a legacy record: %v %+v", err, got)
	}
	if _, err := s.ReadAttachment("a", "b_c"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("(a, b_c) read the legacy record of (a_b, c): %v", err)
	}
	if err := s.RemoveAttachment("a", "b_c"); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ReadAttachment("a_b", "c"); err != nil || a.Name != "old" {
		t.Fatalf("legacy record after removing another attachment: %v %+v", err, a)
	}
	// ADD again after the upgrade: one record, under the new name.
	if err := s.WriteAttachment(&old); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir, podsDir))
	if len(entries) != 1 || entries[0].Name() != "a_b@c.json" {
		t.Errorf("records after rewrite: %v, want only a_b@c.json", entries)
	}
	if err := s.RemoveAttachment("a_b", "c"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Attachments(); len(got) != 0 {
		t.Errorf("after remove: %+v", got)
	}
}

// An unusable record is moved to quarantine/ and reported; the others load.
func TestUnusableRecordsAreQuarantined(t *testing.T) {
	s := New(t.TempDir())
	good := policy.Attachment{ContainerID: "c1", IfName: "eth0", Namespace: "default", Name: "a", IPs: []string{"10.244.1.2"}}
	if err := s.WriteAttachment(&good); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"c2@eth0.json": `{"containerID":"c2",`,                                               // truncated
		"c3@eth0.json": `{"containerID":"c3","ifName":"eth0","ips":["10.244.1.300"]}`,        // not an IP
		"c4@eth0.json": `{"containerID":"c9","ifName":"eth0","ips":["10.244.1.4"]}`,          // another attachment
		"c5_eth0.json": `{"containerID":"c5","ifName":"eth0","ips":["10.244.1.5"],"name":1}`, // legacy, wrong type
	}
	for name, content := range bad {
		if err := os.WriteFile(filepath.Join(s.Dir, podsDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, quarantined, err := s.Attachments()
	if err != nil {
		t.Fatalf("one unusable record must not fail the rest: %v", err)
	}
	if d := cmp.Diff([]policy.Attachment{good}, got); d != "" {
		t.Errorf("attachments (-want +got):\n%s", d)
	}
	var names []string
	for _, q := range quarantined {
		names = append(names, q.File)
		if !errors.Is(q, os.ErrNotExist) || q.Err == nil {
			t.Errorf("%s: %v, want an error matching os.ErrNotExist with its cause", q.File, q)
		}
	}
	if d := cmp.Diff([]string{"c2@eth0.json", "c3@eth0.json", "c4@eth0.json", "c5_eth0.json"}, names); d != "" {
		t.Errorf("quarantined (-want +got):\n%s", d)
	}
	for name := range bad {
		if _, err := os.Stat(filepath.Join(s.Dir, quarantineDir, name)); err != nil {
			t.Errorf("%s not in quarantine/: %v", name, err)
		}
	}
	if _, again, err := s.Attachments(); err != nil || len(again) != 0 {
		t.Errorf("second load: %v, quarantined again %v", err, again)
	}

	// DEL or CHECK of the attachment itself: the record is gone, and why.
	if err := os.WriteFile(filepath.Join(s.Dir, podsDir, "c6@eth0.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.ReadAttachment("c6", "eth0")
	var q Quarantined
	if !errors.Is(err, os.ErrNotExist) || !errors.As(err, &q) || q.File != "c6@eth0.json" {
		t.Errorf("read of an unusable record: %v, want a Quarantined error matching os.ErrNotExist", err)
	}
	if err := s.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(s.Dir); len(entries) != 0 {
		t.Errorf("RemoveAll left %v", entries)
	}
}

// TestRecordsStamp: the stamp changes when a record is added, rewritten
// (even with the same content) or removed, and only then; a record added
// and removed again between two stamps changes it too (an ADD and its DEL
// during a drift check's read-back: equal stamps would make the check take
// the ADD's set members for drift and rewrite everything).
func TestRecordsStamp(t *testing.T) {
	s := New(t.TempDir())
	stamp := func() [32]byte {
		t.Helper()
		st, err := s.RecordsStamp()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	empty := stamp()
	a := policy.Attachment{ContainerID: "c1", IfName: "eth0", Namespace: "ns", Name: "p", IPs: []string{"10.0.0.1"}}
	if err := s.WriteAttachment(&a); err != nil {
		t.Fatal(err)
	}
	one := stamp()
	if one == empty || stamp() != one {
		t.Fatal("stamp did not change with a new record, or changed without one")
	}
	if err := s.WriteAttachment(&a); err != nil {
		t.Fatal(err)
	}
	if stamp() == one {
		t.Error("stamp unchanged after the record was written again")
	}
	if err := s.RemoveAttachment("c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if got := stamp(); got == one || got == empty {
		t.Errorf("stamp after the record was removed: unchanged %v, the empty directory's %v, want neither", got == one, got == empty)
	}
	before := stamp()
	b := a
	b.ContainerID = "c2"
	if err := s.WriteAttachment(&b); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAttachment("c2", "eth0"); err != nil {
		t.Fatal(err)
	}
	if stamp() == before {
		t.Error("stamp unchanged after a record was added and removed again")
	}
}
