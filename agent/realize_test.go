package agent

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// TestRealize: each policy's version in force is stored with when it was
// received (its own change, else the earliest change of the sync) and
// committed; an unchanged version keeps its times; every change received
// is timed to the commit.
func TestRealize(t *testing.T) {
	a := &Agent{Store: state.New(t.TempDir()), Log: slog.New(slog.DiscardHandler)}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	np := func(name, rv string) networkingv1.NetworkPolicy {
		return networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv}}
	}
	snap := &policy.Snapshot{Policies: []networkingv1.NetworkPolicy{np("a", "7"), np("b", "")}}
	a.rz.pending = []source.Change{
		{Object: "pod ns/x", Version: "5", Received: t0},
		{Object: "networkpolicy ns/a", Version: "7", Received: t0.Add(time.Second)},
	}
	delays := a.realize(snap, t0.Add(2*time.Second), t0.Add(3*time.Second))
	if want := []time.Duration{3 * time.Second, 2 * time.Second}; !cmp.Equal(delays, want) {
		t.Errorf("delays %v, want %v", delays, want)
	}
	bVersion := policy.Version(&snap.Policies[1])
	want := []state.PolicyRealized{
		{Policy: "ns/a", Version: "7", Received: t0.Add(time.Second), Realized: t0.Add(3 * time.Second)},
		{Policy: "ns/b", Version: bVersion, Received: t0, Realized: t0.Add(3 * time.Second)},
	}
	check := func(when string) {
		t.Helper()
		got, err := a.Store.ReadRealized()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got.Policies); diff != "" {
			t.Errorf("%s (-want +got):\n%s", when, diff)
		}
	}
	check("first sync")

	snap.Policies[0].ResourceVersion = "8" // a changed, b not; no receipt for a's change
	if d := a.realize(snap, t0.Add(10*time.Second), t0.Add(11*time.Second)); len(d) != 0 {
		t.Errorf("no change received, yet delays %v", d)
	}
	want[0] = state.PolicyRealized{Policy: "ns/a", Version: "8", Received: t0.Add(10 * time.Second), Realized: t0.Add(11 * time.Second)}
	check("second sync")

	// A manifest's policy (no resourceVersion) changed: a new version.
	next := &policy.Snapshot{Policies: slices.Clone(snap.Policies)}
	next.Policies[1].Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	a.realize(next, t0.Add(12*time.Second), t0.Add(13*time.Second))
	if got, _ := a.Store.ReadRealized(); got == nil || got.Policies[1].Version == bVersion {
		t.Errorf("a changed manifest policy kept its version: %+v", got)
	}
	a.realize(snap, t0.Add(14*time.Second), t0.Add(15*time.Second))
	want[1].Received, want[1].Realized = t0.Add(14*time.Second), t0.Add(15*time.Second)
	check("changed back")

	restarted := &Agent{Store: a.Store, Log: a.Log} // reads what is in force from the file
	restarted.realize(snap, t0.Add(20*time.Second), t0.Add(21*time.Second))
	check("after a restart")
}
