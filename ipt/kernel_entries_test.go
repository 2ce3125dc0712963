package ipt

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// TestKernelNetlinkEntriesBatched drives netlinkEntries inside a namespace
// with more entries than one write carries (entriesBatch): every entry is
// added and deleted, -exist semantics hold, and a refused entry anywhere in
// a write (a missing set, the wrong family) makes it report false, so that
// AddEntries falls back to `ipset restore` and its error rather than
// calling a pod's sets complete.
func TestKernelNetlinkEntriesBatched(t *testing.T) {
	ns := newTestNS(t)
	ns.mustIn(`create NETPOL4-A hash:ip family inet
create NETPOL4-B hash:net family inet
create NETPOL4-C hash:ip,port family inet
create NETPOL6-A hash:ip family inet6
`, "ipset", "restore")
	enterNS(t, ns)
	ctx := context.Background()
	var entries []Entry
	for i := range 3*entriesBatch + 7 {
		switch i % 4 {
		case 0:
			entries = append(entries, Entry{Set: "NETPOL4-A", Value: fmt.Sprintf("10.0.%d.%d", i>>8, i&255)})
		case 1:
			entries = append(entries, Entry{Set: "NETPOL4-B", Value: fmt.Sprintf("10.%d.%d.0/24", 1+i>>8, i&255)})
		case 2:
			entries = append(entries, Entry{Set: "NETPOL4-C", Value: fmt.Sprintf("10.0.0.1,udp:%d", 1000+i)})
		default:
			entries = append(entries, Entry{Set: "NETPOL6-A", Value: fmt.Sprintf("fd00::%x", i)})
		}
	}
	members := func() []string {
		t.Helper()
		var got []string
		for name, s := range parseIPSetSave(ns.must("ipset", "save")) {
			for m := range s.Members {
				got = append(got, name+" "+m)
			}
		}
		slices.Sort(got)
		return got
	}
	var want []string
	for _, e := range entries {
		want = append(want, e.Set+" "+memberKey(map[string]SetType{"NETPOL4-A": HashIP, "NETPOL4-B": HashNet, "NETPOL4-C": HashIPPort, "NETPOL6-A": HashIP}[e.Set], e.Value, false))
	}
	slices.Sort(want)
	for round := range 2 { // the second: every entry present already
		if !netlinkEntries(ctx, true, entries) {
			t.Fatalf("add, round %d: false", round+1)
		}
		if got := members(); !slices.Equal(got, want) {
			t.Fatalf("add, round %d: the sets hold %d members, want %d:\n%v", round+1, len(got), len(want), got)
		}
	}
	gone := append(slices.Clone(entries), Entry{Set: "NETPOL4-GONE", Value: "10.9.9.9"})
	for round := range 2 { // the second: every entry absent already
		if !netlinkEntries(ctx, false, gone) {
			t.Fatalf("del, round %d: false", round+1)
		}
		if got := members(); len(got) != 0 {
			t.Fatalf("del, round %d: the sets still hold %v", round+1, got)
		}
	}
	for _, bad := range []Entry{{Set: "NETPOL4-GONE", Value: "10.9.9.9"}, {Set: "NETPOL4-A", Value: "fd00::1"}} {
		for _, at := range []int{0, entriesBatch - 1, entriesBatch, len(entries)} {
			in := slices.Insert(slices.Clone(entries), at, bad)
			if netlinkEntries(ctx, true, in) {
				t.Errorf("add with %v at %d of %d: true, want false", bad, at, len(in))
			}
		}
	}
}
