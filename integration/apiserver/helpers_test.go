package apiserver

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/integration/node"
)

// port is where every test pod serves; otherPort is a second port.
const (
	port      = 80
	otherPort = 81
	// probeTimeout bounds one probe attempt; traffic between namespaces of
	// one machine answers in well under a millisecond.
	probeTimeout = 300 * time.Millisecond
)

// env is one node (a network namespace) with its API proxy.
type env struct {
	c     *cluster
	n     *node.Node
	proxy *proxy
	kc    string // the agent's kubeconfig (ServiceAccount token, via proxy)
}

func (c *cluster) newEnv(t *testing.T) *env {
	t.Helper()
	n := node.New(t, node.Options{})
	p, err := startProxy(n.NetNSPath, c.apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return &env{c: c, n: n, proxy: p, kc: c.kubeconfig(t, p.Addr, c.agentToken)}
}

// agentArgs are the flags of an agent on the env's API.
func (e *env) agentArgs(extra ...string) []string {
	return append([]string{"--kubeconfig", e.kc, "--node-name", e.n.Name, "--metrics-addr", "127.0.0.1:0",
		"--api-timeout", "3s", "--repair-interval", "1s"}, extra...)
}

// startAgent starts a long-running agent and waits until it serves.
func (e *env) startAgent(t *testing.T, extra ...string) *node.Agent {
	t.Helper()
	a, err := e.n.StartAgent(e.agentArgs(extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, 10*time.Millisecond, func() bool { return opsAddr(a) != "" }) {
		t.Fatalf("agent pid %d serves no metrics address within 10s:\n%s", a.PID, a.Output())
	}
	return a
}

// opsAddrRE finds the address the agent's metrics and health server got.
var opsAddrRE = regexp.MustCompile(`msg="serving metrics and health checks" addr=(\S+)`)

func opsAddr(a *node.Agent) string {
	m := opsAddrRE.FindStringSubmatch(a.Output())
	if m == nil {
		return ""
	}
	return m[1]
}

// get does GET path on the agent's metrics and health server.
func (e *env) get(a *node.Agent, path string) (int, string, error) {
	return httpGetIn(e.n.NetNSPath, "http://"+opsAddr(a)+path)
}

// waitReady waits until the agent's /readyz is 200.
func (e *env) waitReady(t *testing.T, a *node.Agent, limit time.Duration) {
	t.Helper()
	if !waitFor(limit, 20*time.Millisecond, func() bool {
		code, _, err := e.get(a, "/readyz")
		return err == nil && code == 200
	}) {
		t.Fatalf("agent pid %d not ready within %v:\n%s", a.PID, limit, a.Output())
	}
}

// waitFor polls cond every interval until it holds or limit passes.
func waitFor(limit, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for i := 0; i < int(limit/interval)+2; i++ {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return false
}

// createNamespace creates a namespace with a random name and labels, and
// deletes it at the end of the test.
func (c *cluster) createNamespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	ns, err := c.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: randomName(prefix), Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// apiPod is the Pod object of a pod scheduled on nodeName, serving on
// port (named "http") and otherPort.
func apiPod(ns, name, nodeName string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName: nodeName,
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}, {ContainerPort: otherPort}}}},
		},
	}
}

// setPodIPs publishes addresses and phase Running through the status
// subresource, as a kubelet does.
func (c *cluster) setPodIPs(t *testing.T, ns, name string, ips ...string) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	p, err := c.admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIPs = nil
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	p.Status.PodIP = ips[0]
	if _, err := c.admin.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// addPod creates a pod on the env's node: the API object first (as the
// scheduler binds it), then CNI ADD through the real chain (as the kubelet
// runs it), servers on both ports, then its addresses in the status.
func (e *env) addPod(t *testing.T, ns, name string, labels map[string]string) *node.Pod {
	t.Helper()
	p := e.addPodWithoutIPs(t, ns, name, labels)
	e.c.setPodIPs(t, ns, name, p.IPs...)
	return p
}

// addPodWithoutIPs is addPod with no addresses in the API: the node knows
// them from CNI ADD alone.
func (e *env) addPodWithoutIPs(t *testing.T, ns, name string, labels map[string]string) *node.Pod {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	if _, err := e.c.admin.CoreV1().Pods(ns).Create(ctx, apiPod(ns, name, e.n.Name, labels), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := e.n.AddPod(ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Serve(port, otherPort); err != nil {
		t.Fatal(err)
	}
	return p
}

// addRemotePod creates a pod of another node, reachable as an outside host
// of the env's node holding ip (CIDR form; the node routes the prefix to
// it), and publishes ip as its address.
func (e *env) addRemotePod(t *testing.T, ns, name, cidr string, labels map[string]string) *node.Outside {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	if _, err := e.c.admin.CoreV1().Pods(ns).Create(ctx, apiPod(ns, name, "node-remote", labels), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	o, err := e.n.AddOutside(ns+"/"+name, []string{cidr})
	if err != nil {
		t.Fatal(err)
	}
	e.c.setPodIPs(t, ns, name, o.Addrs[0])
	return o
}

// deletePod deletes a pod from the API at once: there is no kubelet to
// finish a graceful deletion.
func (c *cluster) deletePod(t *testing.T, ns, name string) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	if err := c.admin.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
}

// allowFrom is a policy selecting pods labelled app=to and allowing TCP
// ports from pods labelled app=from of the same namespace.
func allowFrom(ns, name, to, from string, ports ...int) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": to}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": from}}}},
			}},
		},
	}
	for _, p := range ports {
		np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports,
			networkingv1.NetworkPolicyPort{Protocol: ptr(corev1.ProtocolTCP), Port: ptr(intstr.FromInt32(int32(p)))})
	}
	return np
}

// cell is one expected verdict: from reaches to on port, or not.
type cell struct {
	from, to node.Host
	port     int
	allowed  bool
}

func (c cell) String() string {
	v := "DENIED"
	if c.allowed {
		v = "ALLOWED"
	}
	return fmt.Sprintf("%s -> %s:%d %s", c.from.Label(), c.to.Label(), c.port, v)
}

func allow(from, to node.Host, port int) cell { return cell{from, to, port, true} }
func deny(from, to node.Host, port int) cell  { return cell{from, to, port, false} }

// expect waits (up to limit) until real traffic matches every cell, and
// fails with the cells that never did. It returns how long it took.
func expect(t *testing.T, what string, limit time.Duration, cells ...cell) time.Duration {
	t.Helper()
	start := time.Now()
	var wrong []string
	ok := waitFor(limit, 50*time.Millisecond, func() bool {
		wrong = wrong[:0]
		for _, c := range cells {
			if node.Probe(c.from, c.to.Addr(), "tcp", c.port, probeTimeout) != c.allowed {
				wrong = append(wrong, "want "+c.String())
			}
		}
		return len(wrong) == 0
	})
	if !ok {
		t.Errorf("%s: after %v traffic still differs:\n%s", what, limit, strings.Join(wrong, "\n"))
	}
	return time.Since(start)
}
