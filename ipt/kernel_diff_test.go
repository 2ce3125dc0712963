package ipt

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestKernelDiffOverNetlink: inside the namespace (no `ip netns exec`),
// Diff reads the sets over netlink and finds what `ipset save` would: a
// member removed and one added behind the Runner's back, nothing else.
func TestKernelDiffOverNetlink(t *testing.T) {
	ns := newTestNS(t)
	ctx := context.Background()
	rs := testRuleset()
	if err := ns.runner(ModeNFT).Apply(ctx, []Ruleset{*rs}); err != nil {
		t.Fatal(err)
	}
	ns.must("ipset", "del", "NETPOL4-PEERS", "10.0.0.2")
	ns.must("ipset", "add", "NETPOL4-PEERS", "10.9.9.9")
	enterNS(t, ns)
	d, err := (&Runner{Mode: ModeNFT, Timeout: time.Minute}).Diff(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"set NETPOL4-PEERS: missing member: 10.0.0.2", "set NETPOL4-PEERS: unexpected member: 10.9.9.9"}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
}
