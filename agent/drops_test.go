package agent

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/agent/nflog"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// tcp4 is an IPv4 TCP packet header from src:40000 to dst:6379.
func tcp4(src, dst [4]byte) []byte {
	b := make([]byte, 28)
	b[0], b[9] = 0x45, 6
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	b[20], b[21], b[22], b[23] = 0x9c, 0x40, 0x18, 0xeb // 40000, 6379
	return b
}

// TestDropRecordNamesPodsAndPolicies turns logged packets into records
// with the view of a real sync: pods on both ends (a local one by its
// record, a remote one by its status IP), the policies of the group from
// the prefix, the path from the physdev information.
func TestDropRecordNamesPodsAndPolicies(t *testing.T) {
	snap := &policy.Snapshot{Version: policy.SnapshotVersion, Node: "n1",
		Namespaces: []policy.Namespace{{Name: "default"}},
		Pods: []policy.Pod{{Namespace: "default", Name: "db", Node: "n1", Labels: map[string]string{"role": "db"}},
			{Namespace: "default", Name: "far", Node: "n2", IPs: []string{"10.244.2.9"}}},
		Policies: []networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "deny-db"},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "db"}}}}}}
	atts := []policy.Attachment{{ContainerID: "c1", IfName: "eth0", Namespace: "default", Name: "db", IPs: []string{"10.244.1.2"}}}
	compiled, err := policy.Compile(snap, atts)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{Log: slog.New(slog.DiscardHandler)}
	a.drops.update(snap, atts, compiled.Groups)
	var prefix string
	for h := range compiled.Groups {
		prefix = policy.DropCause{Direction: policy.Ingress, Verdict: policy.VerdictDrop, Reason: policy.ReasonNoPolicy, Group: h}.Prefix()
	}
	at := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	rec, reason, ns, ok := a.dropRecord(nflog.Packet{Prefix: prefix, Payload: tcp4([4]byte{10, 244, 2, 9}, [4]byte{10, 244, 1, 2}), Time: at})
	want := &state.DropRecord{Time: at, Direction: "ingress", Path: "routed", Protocol: "TCP",
		Src:     state.DropEndpoint{IP: "10.244.2.9", Port: 40000, Pod: "default/far"},
		Dst:     state.DropEndpoint{IP: "10.244.1.2", Port: 6379, Pod: "default/db"},
		Verdict: "drop", Reason: "no policy allows it", Policies: []string{"default/deny-db"}}
	if !ok || reason != policy.ReasonNoPolicy || ns != "default" {
		t.Fatalf("ok=%v reason=%q ns=%q", ok, reason, ns)
	}
	if diff := cmp.Diff(want, rec); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	rec, reason, ns, _ = a.dropRecord(nflog.Packet{Prefix: "netpol-E-drop-unknown", Bridged: true,
		Payload: tcp4([4]byte{10, 244, 1, 77}, [4]byte{10, 244, 1, 2}), Time: at})
	if rec.Path != "bridged" || rec.Reason != "pod not known yet" || reason != policy.ReasonUnknown || ns != "" ||
		rec.Src.Pod != "" || len(rec.Policies) != 0 || rec.Policies == nil {
		t.Errorf("unknown-pod record: %+v reason %q ns %q", rec, reason, ns)
	}
	if _, _, _, ok := a.dropRecord(nflog.Packet{Prefix: "kube-router drop", Payload: tcp4([4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2})}); ok {
		t.Error("a packet of another tool's NFLOG rule made a record")
	}
}

// A drop logged before the first sync makes a record that names no pod.
func TestDropRecordBeforeFirstSync(t *testing.T) {
	a := &Agent{Log: slog.New(slog.DiscardHandler)}
	rec, _, _, ok := a.dropRecord(nflog.Packet{Prefix: "netpol-E-drop-unknown",
		Payload: tcp4([4]byte{10, 244, 1, 77}, [4]byte{10, 244, 1, 2}), Time: time.Now()})
	if !ok || rec.Src.Pod != "" || rec.Dst.Pod != "" {
		t.Errorf("record before any sync: %+v, ok %v", rec, ok)
	}
}
