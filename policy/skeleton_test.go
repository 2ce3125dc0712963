package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/policy/node"
)

// TestSkeletonIsCompileOfNothing holds node.Skeleton, which the plugin
// installs before the agent's first sync, to what the compiler makes of a
// snapshot with no pod and no policy and the same attachments unknown:
// chain for chain, rule for rule, member for member.
func TestSkeletonIsCompileOfNothing(t *testing.T) {
	atts := append([]Attachment{
		{ContainerID: "v6", Namespace: "default", Name: "six", IPs: []string{"fd00::7", "10.244.1.77"}},
		{ContainerID: "dup", Namespace: "other", Name: "dup", IPs: []string{"::ffff:10.244.1.77"}},
	}, testAtts...)
	for _, dl := range []DropLog{DefaultDropLog(), {}, {Group: 7, Rate: 3, Burst: 1}} {
		c, err := newCompiler(&Snapshot{Version: SnapshotVersion, DropLog: &dl}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.unknown = OwnAddresses(atts)
		want, err := c.compile()
		if err != nil {
			t.Fatal(err)
		}
		got, err := node.Skeleton(atts, dl)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want.Rulesets, got); d != "" {
			t.Errorf("drop log %+v: node.Skeleton differs from the compile of an empty snapshot (-compile +skeleton):\n%s", dl, d)
		}
	}
	if _, err := node.Skeleton(nil, DropLog{Rate: -1}); err == nil {
		t.Error("node.Skeleton accepted drop log rate -1")
	}
}
