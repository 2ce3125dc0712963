package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/netpol/netpol/agent/source"
	"github.com/netpol/netpol/policy"
)

const node = "node-a"

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func pod(ns, name, nodeName string, labels map[string]string, ips ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "img"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(ips) > 0 {
		p.Status.PodIP = ips[0]
	}
	return p
}

func denyAll(ns, name string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
}

// startSource starts a source on a fake clientset holding objs and waits
// for its first Load.
func startSource(t *testing.T, client *fake.Clientset, timeout time.Duration) (*Source, *policy.Snapshot, error) {
	t.Helper()
	src, err := NewForClient(client, Options{Node: node, SyncTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); src.Shutdown() })
	src.Start(ctx)
	snap, err := src.Load(ctx)
	return src, snap, err
}

// waitChanged waits (bounded) until the source reports a change.
func waitChanged(t *testing.T, src *Source) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case <-src.Notify():
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("no change reported within 5s")
		}
		if ch, _ := src.Changed(context.Background()); ch {
			return
		}
	}
}

func TestLoadConvertsAndFilters(t *testing.T) {
	succeeded := pod("web", "done", "node-b", nil, "10.0.2.9")
	succeeded.Status.Phase = corev1.PodSucceeded
	hostNet := pod("web", "hostnet", "node-b", nil, "192.168.0.2")
	hostNet.Spec.HostNetwork = true
	podIPOnly := pod("web", "old", "node-b", nil) // status.podIP alone: a peer with that address
	podIPOnly.Status.PodIP = "10.0.2.7"
	named := pod("web", "db", "node-b", map[string]string{"app": "db"}, "10.0.2.4")
	named.Spec.Containers[0].Ports = []corev1.ContainerPort{
		{Name: "pg", ContainerPort: 5432, Protocol: corev1.ProtocolTCP}, {ContainerPort: 9999},
	}
	client := fake.NewClientset(
		namespace("web", map[string]string{"team": "a"}),
		pod("web", "local", node, map[string]string{"app": "web"}), // local: IPs from CNI ADD
		pod("web", "remote", "node-b", nil, "10.0.2.3", "fd00::3"), // peer
		pod("web", "pending", "node-b", nil),                       // no IPs yet: ignored
		pod("web", "unscheduled", "", nil),                         // not on any node
		succeeded, hostNet, named, podIPOnly,
		denyAll("web", "deny"),
	)
	_, snap, err := startSource(t, client, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := &policy.Snapshot{
		Version: policy.SnapshotVersion,
		Node:    node,
		Namespaces: []policy.Namespace{
			{Name: "web", Labels: map[string]string{"team": "a", "kubernetes.io/metadata.name": "web"}},
		},
		Pods: []policy.Pod{
			{Namespace: "web", Name: "db", Node: "node-b", Labels: map[string]string{"app": "db"}, IPs: []string{"10.0.2.4"},
				Ports: []policy.NamedPort{{Name: "pg", Protocol: corev1.ProtocolTCP, Port: 5432}}},
			{Namespace: "web", Name: "local", Node: node, Labels: map[string]string{"app": "web"}},
			{Namespace: "web", Name: "old", Node: "node-b", IPs: []string{"10.0.2.7"}},
			{Namespace: "web", Name: "remote", Node: "node-b", IPs: []string{"10.0.2.3", "fd00::3"}},
		},
		Policies: []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "deny"},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}},
	}
	if d := cmp.Diff(want, snap); d != "" {
		t.Errorf("snapshot (-want +got):\n%s", d)
	}
}

func TestChangesNotify(t *testing.T) {
	client := fake.NewClientset(namespace("web", nil), pod("web", "a", "node-b", map[string]string{"v": "1"}, "10.0.2.3"))
	src, _, err := startSource(t, client, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ch, _ := src.Changed(ctx); ch {
		t.Fatal("Changed right after Load")
	}

	// A change the snapshot cannot see is no change.
	p, _ := client.CoreV1().Pods("web").Get(ctx, "a", metav1.GetOptions{})
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	p.ResourceVersion = "7"
	if _, err := client.CoreV1().Pods("web").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A label change is.
	p.Labels = map[string]string{"v": "2"}
	if _, err := client.CoreV1().Pods("web").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, src)
	snap, err := src.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Pods[0].Labels["v"]; got != "2" {
		t.Errorf("label v = %q after the update, want 2", got)
	}
	if ch, _ := src.Changed(ctx); ch {
		t.Error("Changed after Load with no event since")
	}

	if err := client.NetworkingV1().NetworkPolicies("web").Delete(ctx, "none", metav1.DeleteOptions{}); err == nil {
		t.Fatal("deleting a missing policy succeeded")
	}
	if _, err := client.NetworkingV1().NetworkPolicies("web").Create(ctx, denyAll("web", "deny"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, src)
	if snap, _ = src.Load(ctx); len(snap.Policies) != 1 {
		t.Errorf("policies after create = %d, want 1", len(snap.Policies))
	}
}

// TestInvalidPolicyFailsClosed: a policy the API accepted but netpol cannot
// validate does not take the whole view down, and is not left out either
// (that would lift its isolation): it stands as a deny-all of its namespace.
func TestInvalidPolicyFailsClosed(t *testing.T) {
	bad := denyAll("web", "bad")
	bad.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}}},
	}}
	client := fake.NewClientset(namespace("web", nil), denyAll("web", "good"), bad)
	src, snap, err := startSource(t, client, 5*time.Second)
	if err != nil {
		t.Fatalf("an invalid object rejected the whole view: %v", err)
	}
	if len(snap.Policies) != 2 || snap.Policies[0].Name != "bad" || snap.Policies[1].Name != "good" {
		t.Fatalf("policies = %v, want web/bad (as deny-all) and web/good", snap.Policies)
	}
	stand := snap.Policies[0].Spec
	if len(stand.Ingress) != 0 || len(stand.Egress) != 0 || len(stand.PodSelector.MatchLabels) != 0 ||
		len(stand.PolicyTypes) != 2 {
		t.Errorf("web/bad stands as %+v, want podSelector {}, Ingress and Egress, no rules", stand)
	}
	if src.Skipped() != 1 {
		t.Errorf("Skipped = %d, want 1", src.Skipped())
	}
}

// TestSkippedObjectsLogTheirFields: an object skipped for failing validation
// is logged once, by its kind and key, with each problem's field path
// relative to the object.
func TestSkippedObjectsLogTheirFields(t *testing.T) {
	bad := denyAll("web", "bad")
	bad.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}}},
	}}
	client := fake.NewClientset(namespace("web", nil), pod("web", "p", node, nil, "x", "10.0.0.1", "10.0.0.2"), bad)
	var out lockedBuffer
	src, err := NewForClient(client, Options{Node: node, SyncTimeout: 5 * time.Second,
		Log: slog.New(slog.NewJSONHandler(&out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); src.Shutdown() })
	src.Start(ctx)
	if _, err := src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	type record struct{ Msg, Object, Err string }
	var got []record
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		got = append(got, r)
	}
	const msg = "skipping an object the API server accepted but netpol cannot validate"
	want := []record{
		{msg, "pod web/p", `ips[0]: Invalid value: "x": must be a valid IP address; ` +
			`ips[2]: Invalid value: "10.0.0.2": may specify no more than one IP for each IP family`},
		{msg, "networkpolicy web/bad", `spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": ` +
			"must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// lockedBuffer is a bytes.Buffer safe for the informers' goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNotReadyWhenTheAPIFails(t *testing.T) {
	client := fake.NewClientset()
	down := errors.New("connection refused")
	client.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, down })
	client.PrependWatchReactor("*", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, down })
	src, _, err := startSource(t, client, 300*time.Millisecond)
	if !errors.Is(err, source.ErrNotReady) {
		t.Fatalf("Load = %v, want ErrNotReady", err)
	}
	if ch, _ := src.Changed(context.Background()); ch {
		t.Error("Changed while not synced")
	}
}

func TestStrip(t *testing.T) {
	p := pod("web", "a", node, map[string]string{"app": "a"}, "10.0.0.2")
	p.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"}
	p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	p.UID = "u"
	p.ResourceVersion = "12"
	p.Spec.Containers = []corev1.Container{
		{Name: "a", Image: "x", Env: []corev1.EnvVar{{Name: "X", Value: "y"}}, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}, {ContainerPort: 81}}},
		{Name: "b", Image: "y"},
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady}}
	got, err := strip(p)
	if err != nil {
		t.Fatal(err)
	}
	want := &cachedPod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "a", Labels: map[string]string{"app": "a"}, ResourceVersion: "12"},
		View: policy.Pod{Namespace: "web", Name: "a", Node: node, Labels: map[string]string{"app": "a"}, IPs: []string{"10.0.0.2"},
			Ports: []policy.NamedPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
		Phase: corev1.PodRunning,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("strip (-want +got):\n%s", d)
	}
	again, _ := strip(got)
	if d := cmp.Diff(got, again); d != "" {
		t.Errorf("strip is not idempotent (-once +twice):\n%s", d)
	}
	if !sameButVersion(got, func() any { c := *got.(*cachedPod); c.ResourceVersion = "13"; return &c }()) {
		t.Error("objects differing only in resourceVersion are not the same")
	}
}

// A cached pod's copy shares nothing with it: the informer's contract for
// DeepCopyObject, and the snapshots share the original's maps and slices.
func TestCachedPodDeepCopy(t *testing.T) {
	p := pod("web", "a", node, map[string]string{"app": "a"}, "10.0.0.2")
	p.Spec.Containers = []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}}}
	orig := stripPod(p)
	c := orig.DeepCopyObject().(*cachedPod)
	if d := cmp.Diff(orig, c); d != "" {
		t.Fatalf("copy differs (-orig +copy):\n%s", d)
	}
	c.Labels["app"] = "b"
	c.View.Labels["app"] = "b"
	c.View.IPs[0] = "10.0.0.9"
	c.View.Ports[0].Port = 81
	if orig.Labels["app"] != "a" || orig.View.Labels["app"] != "a" || orig.View.IPs[0] != "10.0.0.2" || orig.View.Ports[0].Port != 80 {
		t.Errorf("changing the copy changed the original: %+v", orig)
	}
}
