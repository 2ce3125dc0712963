package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/netpol/netpol/integration/cluster/kube"
	crt "github.com/netpol/netpol/integration/cluster/runtime"
)

// podSubnet is the bridge's pod subnet on the test node (kube-proxy's
// clusterCIDR).
const podSubnet = "10.244.1.0/24"

// nodeConflist is the node's network before netpol: the CNI bridge and
// portmap, as a cluster without NetworkPolicy would have it. The
// DaemonSet's install-cni chains netpol into it.
const nodeConflist = `{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "` + podSubnet + `" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true },
      "snat": true
    }
  ]
}
`

// nodeEnv is a running one-node cluster: containerd and the kubelet in one
// private mount namespace inside the node's network namespace, the control
// plane and kube-proxy beside them.
type nodeEnv struct {
	Node            *nodeNet
	Runtime         *crt.Runtime
	Cluster         *kube.Cluster
	RuntimeEndpoint string
	KubeletRoot     string
	// The node's /etc/cni/net.d, /opt/cni/bin and /var/lib/netpol (the
	// DaemonSet's hostPaths) as the test sees them.
	ConfDir, BinDir, DataDir string
	OrigConflist             string
}

// bringUp starts the node: its network namespace and veth, containerd (the
// node's conflist in /etc/cni/net.d, plugins in /opt/cni/bin and the CNI
// cache, all inside the runtime's copy-on-write mount namespace) with the
// pause, netpol and agnhost images imported, the control plane, the
// kubelet and kube-proxy; it waits for the node to be Ready. Everything is
// torn down at cleanup, by PID, in reverse order.
func bringUp(t *testing.T) *nodeEnv {
	t.Helper()
	bin := k8sBin(t, "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
	rtBin, err := crt.DefaultBinDir()
	if err == nil {
		err = crt.CheckBinaries(rtBin)
	}
	if err != nil {
		requireCluster(t, "container runtime: %v (run hack/cluster-deps.sh)", err)
	}
	images := imageArchives(t, bin)
	cni := cniDir(t)

	n := newNodeNet(t)
	if err := kube.CreateCgroupRoot(n.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := kube.RemoveCgroupRoot(n.Name); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := crt.Start(ctx, crt.Options{
		Dir: shortTempDir(t), NetNS: n.NS, BinDir: rtBin,
		CNIBinDirs:   []string{"/opt/cni/bin", cni},
		ConfDir:      "/etc/cni/net.d",
		CgroupParent: kube.CgroupRoot(n.Name),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd:\n%s", r.LogTail(60))
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	env := &nodeEnv{
		Node: n, Runtime: r, RuntimeEndpoint: "unix://" + r.Socket,
		ConfDir: r.HostPath("/etc/cni/net.d"), BinDir: r.HostPath("/opt/cni/bin"),
		DataDir: r.HostPath("/var/lib/netpol"), OrigConflist: nodeConflist,
	}
	for _, d := range []string{env.ConfDir, env.BinDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(env.ConfDir, "10-bridge.conflist"), []byte(nodeConflist), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range images {
		if err := r.Import(ctx, a); err != nil {
			t.Fatalf("importing %s: %v", a, err)
		}
	}
	env.Cluster = startControlPlane(t, bin, n, r.MntNSPath(), env.RuntimeEndpoint, podSubnet)
	env.KubeletRoot = filepath.Join(env.Cluster.Dir(), "node", "root")
	if err := env.Cluster.StartNode(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	return env
}

// installNetpol creates deploy/rbac.yaml and deploy/netpol.yaml and waits
// for the agent to be Ready; it returns both manifests' objects.
func installNetpol(t *testing.T, env *nodeEnv) (rbac, ds []runtime.Object) {
	t.Helper()
	rbac, ds = manifest(t, "rbac.yaml"), manifest(t, "netpol.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.Cluster.Create(ctx, append(append([]runtime.Object{}, rbac...), ds...)); err != nil {
		t.Fatal(err)
	}
	waitDaemonSet(t, env, "netpol", 3*time.Minute)
	return rbac, ds
}

// conflist is the node's one conflist (/etc/cni/net.d/*.conflist).
func (e *nodeEnv) conflist(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(e.ConfDir, "*.conflist"))
	if len(files) != 1 {
		t.Fatalf("the node's CNI conf dir holds %d conflists: %v", len(files), files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exec runs a command in the node's network namespace and returns stdout.
// Equivalent to: ip netns exec NODE name args...
func (e *nodeEnv) exec(t *testing.T, name string, args ...string) string {
	t.Helper()
	return mustRun(t, "ip", append([]string{"netns", "exec", e.Node.Name, name}, args...)...)
}

// podStates lists the pods of ns with their state, for failure messages.
func (e *nodeEnv) podStates(t *testing.T, ns string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := e.Cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for i := range l.Items {
		fmt.Fprintf(&b, "%s: %s; ", l.Items[i].Name, podState(&l.Items[i], nil))
	}
	return b.String()
}

// imageArchives are the pause, netpol and agnhost images (imageArchive:
// make image's archives or built here), agnhost from bin when
// $NETPOL_AGNHOST does not name one.
func imageArchives(t *testing.T, bin string) []string {
	t.Helper()
	if os.Getenv("NETPOL_AGNHOST") == "" {
		if _, err := os.Stat(filepath.Join(bin, "agnhost")); err == nil {
			t.Setenv("NETPOL_AGNHOST", filepath.Join(bin, "agnhost"))
		}
	}
	return []string{imageArchive(t, "pause"), imageArchive(t, "netpol"), imageArchive(t, "agnhost")}
}

// cniDir holds the reference CNI plugins (make deps): $NETPOL_CNI_PATH's
// first entry or <repo>/.cache/cni.
func cniDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), ".cache", "cni")
	if p := os.Getenv("NETPOL_CNI_PATH"); p != "" {
		dir = filepath.SplitList(p)[0]
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			requireCluster(t, "CNI plugin %s missing in %s (run make deps): %v", p, dir, err)
		}
	}
	return dir
}
