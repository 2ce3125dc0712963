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
	got, err := s.Attachments()
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
	got, err := s.Attachments()
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
	if got, _ := s.Attachments(); len(got) != 0 {
		t.Errorf("after remove: %+v", got)
	}
}
