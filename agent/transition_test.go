package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
)

func TestTransitionIndexIsBothSides(t *testing.T) {
	m := func(set string) policy.Membership { return policy.Membership{Family: ipt.IPv4, Set: set} }
	deny := []policy.Membership{
		{Family: ipt.IPv4, Set: policy.DenySet(ipt.IPv4)},
		{Family: ipt.IPv6, Set: policy.DenySet(ipt.IPv6)},
	}
	prev := &policy.Index{Version: 1, Isolated: []string{"a"}, Pods: map[string][]policy.Membership{
		"a/both":  {m("NETPOL4-GI-OLD"), m("NETPOL4-P-SHARED")},
		"a/gone":  {m("NETPOL4-GI-OLD")},
		"c/gone":  {m("NETPOL4-P-C")},
		"b/moved": {m("NETPOL4-P-B")},
	}}
	next := &policy.Index{Version: 1, Isolated: []string{"b"}, Pods: map[string][]policy.Membership{
		"a/both":  {m("NETPOL4-P-SHARED"), m("NETPOL4-GI-NEW")},
		"b/moved": {m("NETPOL4-GI-B")},
		"b/new":   {m("NETPOL4-GI-B")},
	}}
	want := &policy.Index{Version: 1, Isolated: []string{"a", "b"}, Pods: map[string][]policy.Membership{
		// Known to both: the sets of both, once each.
		"a/both":  {m("NETPOL4-GI-NEW"), m("NETPOL4-GI-OLD"), m("NETPOL4-P-SHARED")},
		"b/moved": {m("NETPOL4-GI-B"), m("NETPOL4-P-B")},
		// Known to one side, in a namespace isolated on either: denied too.
		"a/gone": {deny[0], m("NETPOL4-GI-OLD"), deny[1]},
		"b/new":  {deny[0], m("NETPOL4-GI-B"), deny[1]},
		// Known to one side, namespace isolated on neither: its sets only.
		"c/gone": {m("NETPOL4-P-C")},
	}}
	got := transitionIndex(prev, next)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("transitionIndex (-want +got):\n%s", d)
	}
	// An ADD during the transition of a pod neither side knows is denied
	// in a namespace isolated on either side.
	for ns, denied := range map[string]bool{"a": true, "b": true, "c": false} {
		e := got.Entries(&policy.Attachment{Namespace: ns, Name: "x", IPs: []string{"10.0.0.9"}})
		if (len(e) == 1) != denied {
			t.Errorf("unknown pod of %s: entries %v", ns, e)
		}
	}
}
