package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/agent/health"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// lastKernel keeps the rulesets of the last Apply.
type lastKernel struct {
	fakeKernel
	mu   sync.Mutex
	last []ipt.Ruleset
}

func (k *lastKernel) Apply(ctx context.Context, rs []ipt.Ruleset) error {
	k.mu.Lock()
	k.last = rs
	k.mu.Unlock()
	return k.fakeKernel.Apply(ctx, rs)
}

// members returns every set entry of the last Apply, as "set entry".
func (k *lastKernel) members() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, rs := range k.last {
		for _, s := range rs.Sets {
			for _, m := range s.Members {
				out = append(out, s.Name+" "+m.Entry)
			}
		}
	}
	return out
}

func hasMember(members []string, ip string) bool {
	for _, m := range members {
		if strings.Contains(m, " "+ip) {
			return true
		}
	}
	return false
}

// A corrupt pod record does not stop the sync: it is moved aside, logged
// and counted (netpol_quarantined_records_total), and the other pods are
// enforced.
func TestSyncQuarantinesCorruptRecord(t *testing.T) {
	st := state.New(t.TempDir())
	k := &lastKernel{}
	a := &Agent{Store: st, Kernel: k, Log: slog.New(slog.DiscardHandler), LockTimeout: time.Second, Status: &health.Status{}}
	snap := snapshot("default")
	snap.Pods = []policy.Pod{{Namespace: "default", Name: "a", Labels: map[string]string{"app": "a"}}}
	snap.Policies = denyAll("default")
	if err := st.WriteAttachment(&policy.Attachment{ContainerID: "c1", IfName: "eth0", Namespace: "default", Name: "a",
		IPs: []string{"10.244.1.2"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Dir, "pods", "c2@eth0.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(context.Background(), snap); err != nil {
		t.Fatalf("sync with a corrupt record: %v", err)
	}
	if n := a.Status.Quarantined(); n != 1 {
		t.Errorf("quarantined %d, want 1", n)
	}
	if !hasMember(k.members(), "10.244.1.2") {
		t.Errorf("the other pod is not enforced: %v", k.members())
	}
	if _, err := a.Sync(context.Background(), snap); err != nil || a.Status.Quarantined() != 1 {
		t.Errorf("second sync: %v, quarantined %d, want 1 (counted once)", err, a.Status.Quarantined())
	}
}

// denyAll is a policy selecting every pod of ns, allowing nothing.
func denyAll(ns string) []networkingv1.NetworkPolicy {
	return []networkingv1.NetworkPolicy{{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deny"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}}
}

// Records whose DEL never came are removed by the sync after the grace
// period, when their pod is gone from the source and their network
// namespace is gone; their addresses leave every set. Records that might
// still be live stay.
func TestSyncRemovesStaleRecords(t *testing.T) {
	st := state.New(t.TempDir())
	k := &lastKernel{}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a := &Agent{Store: st, Kernel: k, Log: slog.New(slog.DiscardHandler), LockTimeout: time.Second, Status: &health.Status{},
		StaleGrace: 2 * time.Minute, Now: func() time.Time { return now },
		NetnsExists: func(p string) bool { return p == "/var/run/netns/alive" }}
	snap := snapshot("default")
	snap.Pods = []policy.Pod{{Namespace: "default", Name: "a", Labels: map[string]string{"app": "a"}}}
	snap.Policies = denyAll("default")
	old := now.Add(-3 * time.Minute)
	records := []policy.Attachment{
		{ContainerID: "gone", Namespace: "default", Name: "deleted", IPs: []string{"10.244.1.10"}, Created: old, Netns: "/var/run/netns/gone"},
		{ContainerID: "legacy", Namespace: "default", Name: "deleted2", IPs: []string{"10.244.1.11"}}, // an older version's record
		{ContainerID: "netns-alive", Namespace: "default", Name: "deleted3", IPs: []string{"10.244.1.12"}, Created: old, Netns: "/var/run/netns/alive"},
		{ContainerID: "young", Namespace: "default", Name: "not-yet-seen", IPs: []string{"10.244.1.13"}, Created: now.Add(-time.Minute), Netns: "/var/run/netns/gone"},
		{ContainerID: "pod-known", Namespace: "default", Name: "a", IPs: []string{"10.244.1.14"}, Created: old, Netns: "/var/run/netns/gone"},
	}
	for i := range records {
		records[i].IfName = "eth0"
		if err := st.WriteAttachment(&records[i]); err != nil {
			t.Fatal(err)
		}
	}
	// The stored snapshot may be older than the records: it removes none.
	if _, err := a.syncWith(context.Background(), snap, false); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := st.Attachments(); len(got) != len(records) {
		t.Errorf("a sync of the stored snapshot removed records: %d left of %d", len(got), len(records))
	}
	if _, err := a.Sync(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	got, _, err := st.Attachments()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, r := range got {
		left = append(left, r.ContainerID)
	}
	if want := []string{"netns-alive", "pod-known", "young"}; strings.Join(left, " ") != strings.Join(want, " ") {
		t.Errorf("records left %v, want %v", left, want)
	}
	members := k.members()
	for _, ip := range []string{"10.244.1.10", "10.244.1.11"} {
		if hasMember(members, ip) {
			t.Errorf("%s (stale record removed) is still in a set: %v", ip, members)
		}
	}
	for _, ip := range []string{"10.244.1.12", "10.244.1.13", "10.244.1.14"} {
		if !hasMember(members, ip) {
			t.Errorf("%s (record kept) is in no set: %v", ip, members)
		}
	}
}
