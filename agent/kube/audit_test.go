package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/netpol/netpol/policy"
)

// TestAuditAnnotationAndReceipts: the namespace annotation netpol.io/audit
// reaches the snapshot (and its removal too), a policy's resourceVersion is
// its version, and every change a Load includes is handed over once, with
// when it arrived.
func TestAuditAnnotationAndReceipts(t *testing.T) {
	ns := namespace("web", nil)
	ns.Annotations = map[string]string{policy.AuditAnnotation: "true", "other": "dropped"}
	np := denyAll("web", "deny")
	np.ResourceVersion = "41"
	client := fake.NewClientset(ns, np)
	before := time.Now()
	src, snap, err := startSource(t, client, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Namespaces[0].Audit || !snap.Audited("web") {
		t.Errorf("annotated namespace not in audit: %+v", snap.Namespaces)
	}
	if v := policy.Version(&snap.Policies[0]); v != "41" {
		t.Errorf("policy version %q, want its resourceVersion 41", v)
	}
	got := src.TakeReceived()
	var objs []string
	for _, c := range got {
		objs = append(objs, c.Object+"@"+c.Version)
		if c.Received.Before(before) || c.Received.After(time.Now()) {
			t.Errorf("%s received at %v, outside the test", c.Object, c.Received)
		}
	}
	if s := strings.Join(objs, " "); !strings.Contains(s, "namespace web@") || !strings.Contains(s, "networkpolicy web/deny@41") {
		t.Errorf("received %q, want the namespace and the policy", s)
	}
	if again := src.TakeReceived(); len(again) != 0 {
		t.Errorf("changes handed over twice: %v", again)
	}

	ctx := context.Background()
	cur, _ := client.CoreV1().Namespaces().Get(ctx, "web", metav1.GetOptions{})
	delete(cur.Annotations, policy.AuditAnnotation)
	if _, err := client.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, src)
	if snap, _ = src.Load(ctx); snap.Audited("web") {
		t.Error("namespace still in audit after the annotation was removed")
	}
}
