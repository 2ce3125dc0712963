package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/testsnap"
)

// TestEncodeSnapshotIsMarshal: the snapshot written piece by piece is
// json.Marshal's encoding, byte for byte (HasSnapshot and the first sync's
// comparison compare the file with json.Marshal), for nil and empty lists,
// the optional fields set and not, and a generated 10,000-pod world.
func TestEncodeSnapshotIsMarshal(t *testing.T) {
	// encodeSnapshot names policy.Snapshot's fields itself: a field added
	// there must be added there too.
	var names []string
	typ := reflect.TypeFor[policy.Snapshot]()
	for i := range typ.NumField() {
		names = append(names, typ.Field(i).Tag.Get("json"))
	}
	want := []string{"version", "node", "namespaces", "pods", "policies", "audit,omitempty", "dropLog,omitempty"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("policy.Snapshot's fields are %q; encodeSnapshot writes %q", names, want)
	}
	world := testsnap.Generate(testsnap.Large("node-7")).Snapshot()
	audited := *world
	audited.Audit = true
	audited.DropLog = &policy.DropLog{Group: 7, Rate: 3, Burst: 9}
	cases := map[string]*policy.Snapshot{
		"zero":  {},
		"empty": {Version: policy.SnapshotVersion, Node: "n<1>&", Namespaces: []policy.Namespace{}, Pods: []policy.Pod{}, Policies: []networkingv1.NetworkPolicy{}},
		"one of each": {Version: 1, Node: "n", Namespaces: []policy.Namespace{{Name: "a", Audit: true}},
			Pods:     []policy.Pod{{Namespace: "a", Name: "p", Labels: map[string]string{"b": "2", "a": "\u2028<"}}},
			Policies: []networkingv1.NetworkPolicy{everyFieldPolicy(), {}}},
		"world":             world,
		"world, audit, log": &audited,
	}
	for name, snap := range cases {
		want, err := json.Marshal(snap)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := encodeSnapshot(&got, snap); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			i := 0
			for i < min(got.Len(), len(want)) && got.Bytes()[i] == want[i] {
				i++
			}
			t.Errorf("%s: differs from json.Marshal at byte %d of %d: %.80q, want %.80q", name, i, len(want), got.Bytes()[i:], want[i:])
		}
	}
}

// A writer that fails stops the encoding with its error.
func TestEncodeSnapshotReturnsWriteError(t *testing.T) {
	snap := testsnap.Generate(testsnap.Large("node-7")).Snapshot()
	w := &failAfter{n: 1 << 20}
	if err := encodeSnapshot(w, snap); !errors.Is(err, errFull) {
		t.Errorf("encodeSnapshot to a writer that fails after 1 MiB: %v, want %v", err, errFull)
	}
}

var errFull = errors.New("disk full")

type failAfter struct{ n int }

func (f *failAfter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		return 0, errFull
	}
	f.n -= len(b)
	return len(b), nil
}
