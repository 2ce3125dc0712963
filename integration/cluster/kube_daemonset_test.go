package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/netpol/netpol/integration/cluster/kube"
)

// TestDaemonSetInstallsNetpol applies deploy/rbac.yaml and
// deploy/netpol.yaml (unchanged but for imagePullPolicy: Never) to a real
// one-node cluster: the install-cni init container chains netpol into the
// node's conflist, the agent becomes Ready, and pods the kubelet starts
// afterwards are isolated by NetworkPolicies created through the API, on
// real TCP. Then deploy/uninstall.yaml, as its header says, leaves no
// chain, rule or ipset of netpol in the node, no state in /var/lib/netpol,
// and the original conflist back (the plugin binary stays, as promised).
func TestDaemonSetInstallsNetpol(t *testing.T) {
	env := bringUp(t)
	c := env.Cluster
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	rbac, ds := installNetpol(t, env)
	if conf := env.conflist(t); !strings.Contains(conf, `"type": "netpol"`) && !strings.Contains(conf, `"type":"netpol"`) {
		t.Fatalf("install-cni did not chain netpol into the node's conflist:\n%s", conf)
	}

	const ns = "np-ds"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	names := []string{"server", "client", "other"}
	for _, n := range names {
		if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, netexecPod(ns, n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ip := waitPodsReady(t, c.Client, ns, names, 3*time.Minute)
	nodeNS := env.Node.NS
	waitReach(t, nodeNS, ip["client"], ip["server"], "server", true, 20*time.Second)
	waitReach(t, nodeNS, ip["other"], ip["server"], "server", true, 20*time.Second)

	createPolicy(t, c, ns, "deny-server", nil)
	waitReach(t, nodeNS, ip["client"], ip["server"], "server", false, 30*time.Second)
	waitReach(t, nodeNS, ip["other"], ip["server"], "server", false, 30*time.Second)
	waitReach(t, nodeNS, ip["server"], ip["client"], "client", true, 20*time.Second) // ingress of server only

	createPolicy(t, c, ns, "allow-client", []networkingv1.NetworkPolicyIngressRule{{
		From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
	}})
	waitReach(t, nodeNS, ip["client"], ip["server"], "server", true, 30*time.Second)
	waitReach(t, nodeNS, ip["other"], ip["server"], "server", false, 30*time.Second)
	if s := env.exec(t, "iptables-save"); !strings.Contains(s, "NETPOL") {
		t.Fatalf("policy enforced but no NETPOL chain in the node's iptables-save:\n%s", s)
	}

	un := uninstall(t, env, ds)
	// netpol is gone: the policies are no longer enforced by anyone.
	waitReach(t, nodeNS, ip["other"], ip["server"], "server", true, 30*time.Second)
	// The header's "rollout status ds/netpol-uninstall", then its last step.
	waitDaemonSet(t, env, "netpol-uninstall", 2*time.Minute)
	if err := c.Delete(ctx, append(append([]runtime.Object{}, un...), rbac...)); err != nil {
		t.Fatal(err)
	}
	waitGone(t, env, "app.kubernetes.io/name=netpol-uninstall", 2*time.Minute)
}

// uninstall follows deploy/uninstall.yaml's header: delete netpol.yaml,
// apply uninstall.yaml; once its init containers (the uninstall itself)
// have succeeded it checks for residue. It returns uninstall.yaml's objects.
func uninstall(t *testing.T, env *nodeEnv, ds []runtime.Object) []runtime.Object {
	t.Helper()
	c := env.Cluster
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.Delete(ctx, ds); err != nil {
		t.Fatal(err)
	}
	waitGone(t, env, "app.kubernetes.io/name=netpol", 2*time.Minute)
	un := manifest(t, "uninstall.yaml")
	if err := c.Create(ctx, un); err != nil {
		t.Fatal(err)
	}
	waitInitDone(t, env, "app.kubernetes.io/name=netpol-uninstall", 3*time.Minute)

	for _, cmd := range [][]string{{"iptables-nft-save"}, {"ip6tables-nft-save"}, {"iptables-legacy-save"}, {"ip6tables-legacy-save"}, {"ipset", "list"}} {
		if out := env.exec(t, cmd[0], cmd[1:]...); strings.Contains(out, "NETPOL") {
			t.Errorf("after uninstall %s still shows NETPOL:\n%s", cmd[0], out)
		}
	}
	if got := env.conflist(t); got != env.OrigConflist {
		t.Errorf("after uninstall the conflist is not the original:\n%s\nwant:\n%s", got, env.OrigConflist)
	}
	if left, _ := filepath.Glob(filepath.Join(env.ConfDir, "*.netpol-orig")); len(left) > 0 {
		t.Errorf("after uninstall: %v left", left)
	}
	if entries, err := os.ReadDir(env.DataDir); err != nil || len(entries) > 0 {
		t.Errorf("after uninstall the data dir %s holds %v (%v)", env.DataDir, entries, err)
	}
	if _, err := os.Stat(filepath.Join(env.BinDir, "netpol")); err != nil {
		t.Errorf("uninstall.yaml promises the plugin stays in /opt/cni/bin: %v", err)
	}
	return un
}

// manifest decodes deploy/NAME, every container's image pull policy set to
// Never: no registry is reachable, the images are imported.
func manifest(t *testing.T, name string) []runtime.Object {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kube.Decode(b)
	if err != nil {
		t.Fatalf("deploy/%s: %v", name, err)
	}
	for _, o := range objs {
		if d, ok := o.(*appsv1.DaemonSet); ok {
			spec := &d.Spec.Template.Spec
			for i := range spec.InitContainers {
				spec.InitContainers[i].ImagePullPolicy = corev1.PullNever
			}
			for i := range spec.Containers {
				spec.Containers[i].ImagePullPolicy = corev1.PullNever
			}
		}
	}
	return objs
}

func createPolicy(t *testing.T, c *kube.Cluster, ns, name string, ingress []networkingv1.NetworkPolicyIngressRule) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     ingress,
		},
	}
	if _, err := c.Client.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// pollKubeSystem calls check every 500 ms (each call with a 5 s context)
// until it reports done, and fails the test with what, check's last error
// and the kube-system pods' states when limit passes first.
func pollKubeSystem(t *testing.T, env *nodeEnv, limit time.Duration, what string, check func(ctx context.Context) (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done, err := check(ctx)
		cancel()
		if done {
			return
		}
		if time.Now().After(deadline) || i > 1000 {
			t.Fatalf("%s after %s: %v; pods: %s", what, limit, err, env.podStates(t, "kube-system"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitDaemonSet polls until the kube-system DaemonSet NAME has its one pod
// scheduled, updated and ready.
func waitDaemonSet(t *testing.T, env *nodeEnv, name string, limit time.Duration) {
	t.Helper()
	pollKubeSystem(t, env, limit, "DaemonSet "+name+" not ready", func(ctx context.Context) (bool, error) {
		d, err := env.Cluster.Client.AppsV1().DaemonSets("kube-system").Get(ctx, name, metav1.GetOptions{})
		return err == nil && d.Status.DesiredNumberScheduled == 1 && d.Status.NumberReady == 1 && d.Status.UpdatedNumberScheduled == 1, err
	})
}

// waitGone polls until no kube-system pod matches selector.
func waitGone(t *testing.T, env *nodeEnv, selector string, limit time.Duration) {
	t.Helper()
	pollKubeSystem(t, env, limit, "pods "+selector+" still there", func(ctx context.Context) (bool, error) {
		l, err := env.Cluster.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: selector})
		return err == nil && len(l.Items) == 0, err
	})
}

// waitInitDone polls until the one kube-system pod matching selector has
// run every init container to exit 0; an init container that failed fails
// the test at once.
func waitInitDone(t *testing.T, env *nodeEnv, selector string, limit time.Duration) {
	t.Helper()
	pollKubeSystem(t, env, limit, "init containers of "+selector+" not done", func(ctx context.Context) (bool, error) {
		l, err := env.Cluster.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil || len(l.Items) != 1 {
			return false, err
		}
		p := l.Items[0]
		done := len(p.Status.InitContainerStatuses) == len(p.Spec.InitContainers)
		for _, st := range p.Status.InitContainerStatuses {
			term := st.State.Terminated
			if term == nil {
				term = st.LastTerminationState.Terminated
			}
			if term != nil && term.ExitCode != 0 {
				t.Fatalf("%s: init container %s exited %d: %s %s", p.Name, st.Name, term.ExitCode, term.Reason, term.Message)
			}
			if st.State.Terminated == nil {
				done = false
			}
		}
		return done, nil
	})
}
