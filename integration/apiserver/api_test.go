package apiserver

import (
	"context"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// testRBAC: the agent's ServiceAccount may list and watch namespaces, pods
// and networkpolicies cluster-wide, and do nothing else. (Every agent of
// these tests runs with only this token, so its sufficiency is shown by the
// other subtests.)
func (c *cluster) testRBAC(t *testing.T) {
	for _, obj := range decodeFile(t, rbacFile) {
		if role, ok := obj.(*rbacv1.ClusterRole); ok {
			want := []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"namespaces", "pods"}, Verbs: []string{"list", "watch"}},
				{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"list", "watch"}},
			}
			if d := cmp.Diff(want, role.Rules); d != "" {
				t.Errorf("%s: ClusterRole rules (-want +got):\n%s", rbacFile, d)
			}
		}
	}
	cl := c.agentClient(t)
	ctx := ctxFor(t, 30*time.Second)
	allowed := map[string]func() error{
		"list namespaces": func() error { _, err := cl.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1}); return err },
		"list pods":       func() error { _, err := cl.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1}); return err },
		"list networkpolicies": func() error {
			_, err := cl.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{Limit: 1})
			return err
		},
		"watch pods": func() error {
			w, err := cl.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		},
	}
	forbidden := map[string]func() error{
		"get a pod":       func() error { _, err := cl.CoreV1().Pods("default").Get(ctx, "x", metav1.GetOptions{}); return err },
		"get a namespace": func() error { _, err := cl.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); return err },
		"list secrets":    func() error { _, err := cl.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); return err },
		"list configmaps": func() error {
			_, err := cl.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{})
			return err
		},
		"list nodes":           func() error { _, err := cl.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); return err },
		"list services":        func() error { _, err := cl.CoreV1().Services("").List(ctx, metav1.ListOptions{}); return err },
		"list serviceaccounts": func() error { _, err := cl.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{}); return err },
		"create a namespace": func() error {
			_, err := cl.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		},
		"delete a policy": func() error {
			return cl.NetworkingV1().NetworkPolicies("default").Delete(ctx, "x", metav1.DeleteOptions{})
		},
		"patch a pod's status": func() error {
			_, err := cl.CoreV1().Pods("default").Patch(ctx, "x", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{}, "status")
			return err
		},
	}
	for what, f := range allowed {
		if err := f(); err != nil {
			t.Errorf("agent ServiceAccount: %s: %v, want allowed", what, err)
		}
	}
	for what, f := range forbidden {
		if err := f(); !apierrors.IsForbidden(err) {
			t.Errorf("agent ServiceAccount: %s: %v, want Forbidden", what, err)
		}
	}
}

// testPolicyLifecycle: what the API says, the node's traffic does: a
// policy created, a pod's label changed, the policy updated and deleted, a
// remote and a local pod deleted. Peers are a local pod with its address
// only from CNI ADD and a pod of another node (an outside host of the node
// holding the address its Pod object publishes).
func (c *cluster) testPolicyLifecycle(t *testing.T) {
	e := c.newEnv(t)
	ns := c.createNamespace(t, "lc", nil)
	db := e.addPod(t, ns, "db", map[string]string{"app": "db"})
	web := e.addPod(t, ns, "web", map[string]string{"app": "web"})
	other := e.addPod(t, ns, "other", map[string]string{"app": "other"})
	// The API never learns this pod's address (its kubelet is slow): the
	// node knows it from CNI ADD.
	quiet := e.addPodWithoutIPs(t, ns, "quiet", map[string]string{"app": "web"})
	remote := e.addRemotePod(t, ns, "remote", "10.244.2.7/24", map[string]string{"app": "web"})
	if err := remote.Serve(port); err != nil {
		t.Fatal(err)
	}
	a := e.startAgent(t)
	e.waitReady(t, a, 20*time.Second)
	ctx := ctxFor(t, 5*time.Minute)
	limit := 10 * time.Second

	expect(t, "no policy", limit, allow(web, db, port), allow(other, db, port), allow(remote, db, port), allow(db, remote, port))

	policies := c.admin.NetworkingV1().NetworkPolicies(ns)
	if _, err := policies.Create(ctx, allowFrom(ns, "db", "db", "web", port), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, "policy created", limit, allow(web, db, port), deny(web, db, otherPort), deny(other, db, port),
		allow(quiet, db, port), allow(remote, db, port), allow(db, web, port), allow(other, web, port))

	if _, err := c.admin.CoreV1().Pods(ns).Patch(ctx, "other", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"app":"web"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, "label of other changed to app=web", limit, allow(other, db, port), allow(web, db, port))

	np, err := policies.Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	np.Spec.Ingress[0].Ports[0].Port = ptr(intstr.FromInt32(otherPort))
	if _, err := policies.Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, "policy updated to port 81", limit, deny(web, db, port), allow(web, db, otherPort), allow(other, db, otherPort),
		deny(remote, db, port))

	c.deletePod(t, ns, "remote")
	expect(t, "remote pod deleted: no longer a peer", limit, deny(remote, db, otherPort), allow(web, db, otherPort))

	// A local pod deleted from the API while its sandbox still exists is
	// unknown to the node: in a namespace with policies it is denied.
	c.deletePod(t, ns, "web")
	expect(t, "local pod deleted from the API", limit, deny(web, db, otherPort), deny(web, other, port), allow(other, db, otherPort))
	if err := e.n.DelPod(web); err != nil {
		t.Fatal(err)
	}

	lat := c.policyLatency(t, e, ns, "db", 7)
	t.Logf("policy change in the API to rule in the kernel (3 pods on the node, 2 policies): median %v, all %v", median(lat), lat)

	if err := policies.Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, "policy deleted", limit, allow(other, db, port), allow(db, other, otherPort))
	if code, body, err := e.get(a, "/metrics"); err != nil || code != 200 || !strings.Contains(body, "netpol_sync_duration_seconds_count") {
		t.Errorf("/metrics: %d %v\n%.400s", code, err, body)
	}
}

// policyLatency creates a policy "lat" selecting the pods labelled
// app=target of ns, updates it n times, each time to a new port, and
// measures how long each takes from the API's answer to the rule in the
// node's kernel. The policy's chain (named after the policy, so it stays)
// is found once in iptables-save, then read alone every 5 ms: a full
// iptables-save of a big ruleset would take a core from the agent.
func (c *cluster) policyLatency(t *testing.T, e *env, ns, target string, n int) []time.Duration {
	t.Helper()
	ctx := ctxFor(t, 5*time.Minute)
	policies := c.admin.NetworkingV1().NetworkPolicies(ns)
	np, err := policies.Create(ctx, allowFrom(ns, "lat", target, "nobody", 40000), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain := ""
	if !waitFor(60*time.Second, 20*time.Millisecond, func() bool {
		chain = ruleChain(e, "--dport 40000 ")
		return chain != ""
	}) {
		t.Fatalf("policy %s/lat never reached the kernel", ns)
	}
	var out []time.Duration
	for i := 1; i <= n; i++ {
		p := 40000 + i
		np.Spec.Ingress[0].Ports[0].Port = ptr(intstr.FromInt32(int32(p)))
		if np, err = policies.Update(ctx, np, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if !waitFor(60*time.Second, 5*time.Millisecond, func() bool { return chainHas(e, chain, "--dport "+strconv.Itoa(p)+" ") }) {
			t.Fatalf("update %d of policy %s/lat never reached chain %s", i, ns, chain)
		}
		out = append(out, time.Since(start).Round(time.Millisecond))
	}
	if err := policies.Delete(ctx, "lat", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// ruleChain returns the chain of the first rule of the node's
// iptables-save that holds s ("" if none does).
func ruleChain(e *env, s string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.n.IPTablesSave(ctx)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "-A" && strings.Contains(l, s) {
			return f[1]
		}
	}
	return ""
}

// chainHas reports whether a chain of the node holds s.
// Equivalent to: ip netns exec NODE iptables -S CHAIN | grep -F S
func chainHas(e *env, chain, s string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.n.Exec(ctx, "iptables", "-w", "-S", chain)
	return err == nil && strings.Contains(string(out), s)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// testOnce: --once lists, syncs and exits 0; with the API unreachable it
// exits non-zero, says why, and leaves the node as it was.
func (c *cluster) testOnce(t *testing.T) {
	e := c.newEnv(t)
	ns := c.createNamespace(t, "once", nil)
	db := e.addPod(t, ns, "db", map[string]string{"app": "db"})
	web := e.addPod(t, ns, "web", map[string]string{"app": "web"})
	other := e.addPod(t, ns, "other", map[string]string{"app": "other"})
	ctx := ctxFor(t, time.Minute)
	if _, err := c.admin.NetworkingV1().NetworkPolicies(ns).Create(ctx, allowFrom(ns, "db", "db", "web", port), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := e.n.RunAgent(e.agentArgs("--once")...)
	if err != nil || !strings.Contains(string(out), "msg=synced") {
		t.Fatalf("--once: %v\n%s", err, out)
	}
	expect(t, "after --once", time.Second, allow(web, db, port), deny(other, db, port))

	e.proxy.Close()
	start := time.Now()
	out, err = e.n.RunAgent(e.agentArgs("--once", "--api-timeout", "1s")...)
	if err == nil || !strings.Contains(string(out), "could not list namespaces, pods and networkpolicies within 1s") {
		t.Errorf("--once with the API unreachable: %v, want a failure saying why\n%s", err, out)
	}
	t.Logf("--once with the API unreachable failed after %v:\n%s", time.Since(start).Round(time.Millisecond), lines(string(out), "could not list"))
	expect(t, "after a failed --once", time.Second, allow(web, db, port), deny(other, db, port))
	if err := e.proxy.Reopen(); err != nil {
		t.Fatal(err)
	}
}

// testRestartWithoutAPI: an agent restarted while the API is unreachable
// enforces the stored snapshot (even after the rules were lost, as in a
// reboot), the plugin keeps working (a new pod fails closed), and when the
// API returns the node catches up with what changed meanwhile.
func (c *cluster) testRestartWithoutAPI(t *testing.T) {
	e := c.newEnv(t)
	ns := c.createNamespace(t, "restart", nil)
	db := e.addPod(t, ns, "db", map[string]string{"app": "db"})
	web := e.addPod(t, ns, "web", map[string]string{"app": "web"})
	other := e.addPod(t, ns, "other", map[string]string{"app": "other"})
	ctx := ctxFor(t, 5*time.Minute)
	policies := c.admin.NetworkingV1().NetworkPolicies(ns)
	if _, err := policies.Create(ctx, allowFrom(ns, "db", "db", "web", port), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := e.startAgent(t)
	e.waitReady(t, a, 20*time.Second)
	limit := 10 * time.Second
	expect(t, "agent on the API", limit, allow(web, db, port), deny(other, db, port))
	if err := a.Stop(); err != nil {
		t.Fatalf("agent did not exit 0 on SIGTERM: %v\n%s", err, a.Output())
	}

	e.proxy.Close() // the API goes away
	// Lose our rules, as in a reboot (the data directory stays): the jump
	// from FORWARD, our first rule there.
	if out, err := e.n.Exec(ctx, "iptables", "-S", "FORWARD", "1"); err != nil || !strings.Contains(string(out), "-j NETPOL-FORWARD") {
		t.Fatalf("first FORWARD rule: %v %s", err, out)
	}
	if _, err := e.n.Exec(ctx, "iptables", "-D", "FORWARD", "1"); err != nil {
		t.Fatal(err)
	}
	expect(t, "agent stopped and our rules lost", limit, allow(other, db, port))

	b := e.startAgent(t)
	took := expect(t, "restarted without the API: the stored snapshot is enforced", limit, allow(web, db, port), deny(other, db, port))
	t.Logf("restarted agent enforced the stored snapshot within %v", took.Round(time.Millisecond))
	if code, _, err := e.get(b, "/readyz"); err != nil || code != 503 {
		t.Errorf("/readyz without the API = %d %v, want 503", code, err)
	}
	if code, _, err := e.get(b, "/healthz"); err != nil || code != 200 {
		t.Errorf("/healthz without the API = %d %v, want 200", code, err)
	}

	// The plugin works on: a pod added now is unknown to the node and, its
	// namespace having a policy, denied until the API tells about it.
	late, err := e.n.AddPod(ns, "late")
	if err != nil {
		t.Fatal(err)
	}
	if err := late.Serve(port); err != nil {
		t.Fatal(err)
	}
	expect(t, "pod added while the API is away", limit, deny(late, db, port), deny(late, web, port), allow(web, db, port))

	// Meanwhile the cluster changes.
	if _, err := c.admin.CoreV1().Pods(ns).Create(ctx, apiPod(ns, "late", e.n.Name, map[string]string{"app": "web"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.setPodIPs(t, ns, "late", late.IPs...)
	np, err := policies.Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{
		PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}})
	if _, err := policies.Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	expect(t, "API still away: nothing changed", limit, deny(other, db, port), deny(late, db, port))
	_, body, _ := e.get(b, "/metrics")
	if age := metricValue(body, "netpol_snapshot_age_seconds"); !(age > 0.5) {
		t.Errorf("netpol_snapshot_age_seconds = %v while the API is away, want > 0.5", age)
	}

	if err := e.proxy.Reopen(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.waitReady(t, b, 60*time.Second)
	t.Logf("API back: ready after %v (client-go's retry backoff)", time.Since(start).Round(time.Millisecond))
	expect(t, "API back: caught up", limit, allow(other, db, port), allow(late, db, port), allow(web, db, port))
	_, body, _ = e.get(b, "/metrics")
	if age := metricValue(body, "netpol_snapshot_age_seconds"); age > 1 {
		t.Errorf("netpol_snapshot_age_seconds = %v with the API back, want ~0", age)
	}
	if err := b.Stop(); err != nil {
		t.Errorf("agent did not exit 0 on SIGTERM: %v", err)
	}
	if _, err := os.Stat(e.n.DataDir + "/snapshot.json"); err != nil {
		t.Errorf("snapshot: %v", err)
	}
}

// metricValue returns the value of an unlabelled metric in a Prometheus
// text exposition (NaN-less: -1 when absent).
func metricValue(body, name string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
