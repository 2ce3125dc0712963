package plugin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/netpol/netpol/state"
)

// One corrupt pod record must not freeze the node: ADD (bootstrap reads
// every record), CHECK and DEL of the other pods go on, and the record is
// moved to dataDir/quarantine/.
func TestCorruptRecordDoesNotFreezeTheNode(t *testing.T) {
	f := newFixture(t)
	if _, err := f.call(add, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("ADD c1: %v", err)
	}
	corrupt := filepath.Join(f.dataDir, "pods", "c9@eth0.json")
	if err := os.WriteFile(corrupt, []byte(`{"containerID":"c9","ifN`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.call(add, "c2", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=b", f.stdin("")); err != nil {
		t.Errorf("ADD with a corrupt record on the node: %v", err)
	}
	if _, err := f.call(check, "c1", podArgs, f.stdin("")); err != nil {
		t.Errorf("CHECK with a corrupt record on the node: %v", err)
	}
	if _, err := f.call(del, "c1", podArgs, f.stdin("")); err != nil {
		t.Errorf("DEL with a corrupt record on the node: %v", err)
	}
	if _, err := os.Stat(corrupt); !os.IsNotExist(err) {
		t.Errorf("the corrupt record is still in pods/: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "quarantine", "c9@eth0.json")); err != nil {
		t.Errorf("the corrupt record is not in quarantine/: %v", err)
	}
	// CHECK of the pod whose record was corrupt fails: netpol knows nothing of it.
	_, err := f.call(check, "c9", podArgs, f.stdin(""))
	if err == nil || !strings.Contains(err.Error(), "no record of container c9") {
		t.Errorf("CHECK of the quarantined attachment: %v, want an error saying there is no record", err)
	}
	if l := f.ipsetList(); !strings.Contains(l, "10.244.1.5") {
		t.Errorf("c2's address (the same in this fixture) left the sets:\n%s", l)
	}
}

// ADD records when it ran and the network namespace it was given: the
// newest record owns a contested address, and the agent removes a record
// whose namespace is gone and whose pod the source no longer has.
func TestAddRecordsCreationAndNetns(t *testing.T) {
	f := newFixture(t)
	before := time.Now()
	if _, err := f.call(add, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	a, err := state.New(f.dataDir).ReadAttachment("c1", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if a.Netns != f.netns.Path() {
		t.Errorf("netns %q, want %q", a.Netns, f.netns.Path())
	}
	if a.Created.Before(before.Add(-time.Second)) || a.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("created %v, want the time of ADD (%v)", a.Created, before)
	}
}

// A record that cannot be written fails ADD with an error saying so, and
// no set holds the pod's address: the kernel is left as without the ADD.
// (The record's file name is taken by a directory, so the rename fails.)
func TestAddWhoseRecordFailsAddsNothing(t *testing.T) {
	f := newFixture(t)
	if _, err := f.call(add, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("ADD c1: %v", err)
	}
	f.sync(state.New(f.dataDir)) // default/a is now known, selected, in a group
	if _, err := f.call(del, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("DEL c1: %v", err)
	}
	if l := f.ipsetList(); strings.Contains(l, "10.244.1.5") {
		t.Fatalf("after DEL c1 the address is still in a set:\n%s", l)
	}
	if err := os.Mkdir(filepath.Join(f.dataDir, "pods", "c3@eth0.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := f.call(add, "c3", podArgs, f.stdin(""))
	if err == nil || !strings.Contains(err.Error(), "record pod") {
		t.Errorf("ADD whose record cannot be written: %v, want an error saying so", err)
	}
	if out != "" {
		t.Errorf("a failed ADD printed %q", out)
	}
	if l := f.ipsetList(); strings.Contains(l, "10.244.1.5") {
		t.Errorf("the address of an ADD that failed to record is in a set:\n%s", l)
	}
}

// A container ID that cannot name a record is invalid input: ADD refuses
// it with an error naming it, before anything is written.
func TestAddRefusesIDsThatCannotNameARecord(t *testing.T) {
	f := newFixture(t)
	if _, err := f.call(add, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("ADD c1: %v", err)
	}
	f.sync(state.New(f.dataDir))
	if _, err := f.call(del, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("DEL c1: %v", err)
	}
	for _, id := range []string{"c/3", "c@3", strings.Repeat("c", 257)} {
		_, err := f.call(add, id, podArgs, f.stdin(""))
		var e *types.Error
		if !errors.As(err, &e) || e.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(e.Error(), "container ID") {
			t.Errorf("ADD of container %q: %v, want CNI error %d naming the container ID", id, err, types.ErrInvalidEnvironmentVariables)
		}
	}
	if l := f.ipsetList(); strings.Contains(l, "10.244.1.5") {
		t.Errorf("a refused ADD's address is in a set:\n%s", l)
	}
}
