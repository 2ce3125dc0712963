package apiserver

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/policy/testsnap"
	"github.com/netpol/netpol/state"
)

// testScale puts the benchmark cluster of policy/testsnap (10,000 pods
// over 100 namespaces and 100 nodes, 1,000 NetworkPolicies) into the API,
// starts an agent on it and reports the agent's memory and how long a
// policy change takes to reach the kernel. The aims (RSS <= 150 MiB,
// change to kernel <= 200 ms) are reported, not asserted: the numbers
// depend on the machine. NETPOL_SCALE_PODS and NETPOL_SCALE_POLICIES
// shrink or grow the cluster.
func (c *cluster) testScale(t *testing.T) {
	e := c.newEnv(t)
	cfg := testsnap.Large(e.n.Name)
	cfg.Pods = envInt(t, "NETPOL_SCALE_PODS", cfg.Pods)
	cfg.Policies = envInt(t, "NETPOL_SCALE_POLICIES", cfg.Policies)
	cluster := testsnap.Generate(cfg)

	start := time.Now()
	c.createAll(t, cluster)
	t.Logf("created %d namespaces, %d pods (with status) and %d policies through the API in %v",
		len(cluster.Namespaces), len(cluster.Pods), len(cluster.Policies), time.Since(start).Round(time.Millisecond))

	// What CNI ADD would have recorded for this node's pods: their addresses
	// fill the peer sets as on a real node.
	st := state.New(e.n.DataDir)
	for _, att := range cluster.Attachments(len(cluster.LocalPods())) {
		if err := st.WriteAttachment(&att); err != nil {
			t.Fatal(err)
		}
	}

	start = time.Now()
	// The default repair interval: a read-back of this ruleset takes about
	// as long as a sync, and holds the lock a sync needs.
	a := e.startAgent(t, "--repair-interval", "5s")
	e.waitReady(t, a, 5*time.Minute)
	ready := time.Since(start)
	time.Sleep(3 * time.Second) // let the start-up garbage be collected
	rss, hwm := procStatus(t, a.PID, "VmRSS"), procStatus(t, a.PID, "VmHWM")
	t.Logf("agent ready (lists in, first sync applied) %v after start; RSS %s, peak RSS %s", ready.Round(time.Millisecond), rss, hwm)

	// The policy whose changes are timed selects a local pod's app.
	var ns, target string
	for _, p := range cluster.Pods {
		if p.Spec.NodeName == e.n.Name {
			ns, target = p.Namespace, p.Labels["app"]
			break
		}
	}
	if target == "" {
		t.Fatal("no local pod in the generated cluster")
	}
	lat := c.policyLatency(t, e, ns, target, 7)
	t.Logf("policy change in the API to rule in the kernel (%d pods, %d policies): median %v, all %v",
		len(cluster.Pods), len(cluster.Policies), median(lat), lat)
	var syncs []string
	for _, l := range strings.Split(a.Output(), "\n") {
		if strings.Contains(l, "msg=synced") {
			syncs = append(syncs, l)
		}
	}
	t.Logf("the agent's last syncs (phases: compile, apply, write):\n%s", strings.Join(syncs[max(0, len(syncs)-3):], "\n"))
	_, body, err := e.get(a, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	sum, count := metricValue(body, "netpol_sync_duration_seconds_sum"), metricValue(body, "netpol_sync_duration_seconds_count")
	t.Logf("metrics: %v syncs, mean %.3fs; rules %v, set members %v; process_resident_memory_bytes %v",
		count, sum/count, metricValue(body, "netpol_rules"), metricValue(body, "netpol_set_members"),
		metricValue(body, "process_resident_memory_bytes"))
	t.Logf("SUMMARY agent RSS %s (peak %s) with %d pods and %d policies in the API; policy change to kernel median %v",
		rss, hwm, len(cluster.Pods), len(cluster.Policies), median(lat))
}

// createAll creates the cluster's objects with a few concurrent workers:
// namespaces, then pods (and the status of those with addresses), then
// policies.
func (c *cluster) createAll(t *testing.T, cl *testsnap.Cluster) {
	t.Helper()
	ctx := ctxFor(t, 20*time.Minute)
	for i := range cl.Namespaces {
		ns := cl.Namespaces[i].DeepCopy()
		_, err := c.admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) { // kube-system
			var cur *corev1.Namespace
			if cur, err = c.admin.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); err == nil {
				cur.Labels = ns.Labels
				_, err = c.admin.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			t.Fatalf("namespace %s: %v", ns.Name, err)
		}
	}
	parallel(t, len(cl.Pods), func(i int) error {
		p := cl.Pods[i].DeepCopy()
		status := p.Status
		created, err := c.admin.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if err != nil || len(status.PodIPs) == 0 {
			return err
		}
		created.Status = status
		created.Status.Phase = corev1.PodRunning
		_, err = c.admin.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
		return err
	})
	parallel(t, len(cl.Policies), func(i int) error {
		np := cl.Policies[i].DeepCopy()
		_, err := c.admin.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{})
		return err
	})
}

// parallel runs f(0..n-1) on 16 workers and fails the test on the first
// error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("object %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// procStatus returns a field of /proc/PID/status ("123456 kB").
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.Atoi(strings.Fields(v)[0])
			if err == nil {
				return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
			}
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return ""
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: not a count", name, v)
	}
	return n
}
