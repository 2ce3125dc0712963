package agent

import (
	"log/slog"
	"testing"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// TestSaveExpectedAfterAnotherWriter: when another process (a --once run
// beside the daemon) stored expected.json for another index, the daemon's
// next commit of its own index writes the file again, though it had
// written that very index before; until then CHECK would refuse the file.
func TestSaveExpectedAfterAnotherWriter(t *testing.T) {
	st := state.New(t.TempDir())
	a := &Agent{Store: st, Log: slog.New(slog.DiscardHandler)}
	c, err := policy.Compile(&policy.Snapshot{Version: policy.SnapshotVersion, Node: "n1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := state.IndexSum(state.EncodeIndex(&c.Index))
	a.saveExpected(c)
	if !st.ExpectedNames(sum) {
		t.Fatal("expected.json does not name the committed index after the first save")
	}
	if err := st.WriteExpected("another-index", []byte("[]")); err != nil {
		t.Fatal(err)
	}
	if st.ExpectedNames(sum) {
		t.Fatal("ExpectedNames: true for a file that names another index")
	}
	a.saveExpected(c)
	if !st.ExpectedNames(sum) {
		t.Error("expected.json still names another index after the daemon saved its own again")
	}
	e, err := st.ReadExpected()
	if err != nil {
		t.Fatal(err)
	}
	if e.Index != sum {
		t.Errorf("ReadExpected: index %q, want %q", e.Index, sum)
	}
}
