package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
)

// cluster is the API server the subtests share: an in-process
// kube-apiserver (no controllers, no scheduler, no kubelet) on an embedded
// etcd, both listening on 127.0.0.1 of the test's (root) network namespace.
// Agents inside node namespaces reach it through a proxy (see proxy).
type cluster struct {
	admin    kubernetes.Interface
	adminCfg *rest.Config
	apiAddr  string // host:port of the API server
	// agentToken is a token of the agent's ServiceAccount, bound by
	// deploy/rbac.yaml: every agent of these tests runs with only that.
	agentToken string
}

// rbacFile is the RBAC the DaemonSet ships, applied as is.
const rbacFile = "../../deploy/rbac.yaml"

// TestAPIServer starts the API server once and runs every scenario against
// it as a subtest.
func TestAPIServer(t *testing.T) {
	requireEnv(t)
	quietKlog()
	start := time.Now()
	etcdURL := startEtcd(t)
	sc := storagebackend.NewDefaultConfig(path.Join("/", randomName("etcd"), "registry"), nil)
	sc.Transport.ServerList = []string{etcdURL}
	srv := kubeapiservertesting.StartTestServerOrDie(t,
		&kubeapiservertesting.TestServerInstanceOptions{EnableCertAuth: true, DisableInvariantChecks: true},
		[]string{
			// No controller manager runs: nothing would create the
			// namespaces' default ServiceAccounts that admission requires.
			// The generated cluster's pods are not written for the
			// "restricted" Pod Security level some of its namespaces carry.
			"--disable-admission-plugins=ServiceAccount,PodSecurity",
			"--authorization-mode=RBAC",
		}, sc)
	t.Cleanup(srv.TearDownFn)
	c := newCluster(t, srv.ClientConfig)
	t.Logf("etcd and kube-apiserver up in %v at %s", time.Since(start).Round(time.Millisecond), c.apiAddr)

	t.Run("RBACExactlyListWatch", c.testRBAC)
	t.Run("DeployManifests", c.testDeployManifests)
	t.Run("PolicyLifecycle", c.testPolicyLifecycle)
	t.Run("Once", c.testOnce)
	t.Run("RestartWithoutAPI", c.testRestartWithoutAPI)
	t.Run("Scale", c.testScale)
}

// requireEnv skips without root, and fails without the binaries.
func requireEnv(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: nodes are network namespaces")
	}
	if testing.Short() {
		t.Skip("-short: no API server")
	}
}

// quietKlog keeps the API server's own logging (klog to stderr) out of the
// test output; what it logs through the test's logger stays.
func quietKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, v := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		_ = fs.Set(k, v)
	}
	klog.SetOutput(io.Discard)
}

// startEtcd runs an embedded etcd on free ports of 127.0.0.1 and returns
// its client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Name = "netpol-test"
	client, peer := freeURL(t), freeURL(t)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "fatal"   // it complains of its own shutdown
	cfg.UnsafeNoFsync = true // a throwaway store: bulk creates go faster
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("etcd not ready within 60s")
	}
	return client.String()
}

// freeURL returns http://127.0.0.1:PORT for a port free a moment ago.
func freeURL(t *testing.T) url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return url.URL{Scheme: "http", Host: ln.Addr().String()}
}

func newCluster(t *testing.T, cfg *rest.Config) *cluster {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 5000, 10000
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{admin: admin, adminCfg: cfg, apiAddr: u.Host}
	c.applyRBAC(t)
	return c
}

// applyRBAC creates the objects of deploy/rbac.yaml and a token of its
// ServiceAccount.
func (c *cluster) applyRBAC(t *testing.T) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	var sa *corev1.ServiceAccount
	var role *rbacv1.ClusterRole
	for _, obj := range decodeFile(t, rbacFile) {
		var err error
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			sa, err = c.admin.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			role = o
			_, err = c.admin.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = c.admin.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("%s: unexpected %T", rbacFile, obj)
		}
		if err != nil {
			t.Fatalf("%s: %v", rbacFile, err)
		}
	}
	if sa == nil || role == nil {
		t.Fatalf("%s: no ServiceAccount or no ClusterRole", rbacFile)
	}
	c.waitForRBAC(ctx, t, sa, role)
	tr, err := c.admin.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3 * 3600))}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of %s/%s: %v", sa.Namespace, sa.Name, err)
	}
	c.agentToken = tr.Status.Token
}

// waitForRBAC returns once the API server's authorizer grants sa every
// verb on every resource of role. The RBAC authorizer reads roles and
// bindings through informers, so a binding just created is not in force
// at once: a request made straight after applyRBAC could be refused.
func (c *cluster) waitForRBAC(ctx context.Context, t *testing.T, sa *corev1.ServiceAccount, role *rbacv1.ClusterRole) {
	t.Helper()
	user := serviceaccount.MakeUsername(sa.Namespace, sa.Name)
	groups := serviceaccount.MakeGroupNames(sa.Namespace)
	for _, rule := range role.Rules {
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				for _, verb := range rule.Verbs {
					attrs := &authorizationv1.ResourceAttributes{Group: group, Resource: resource, Verb: verb}
					err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
						r, err := c.admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
							Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: attrs},
						}, metav1.CreateOptions{})
						if err != nil {
							return false, err
						}
						return r.Status.Allowed, nil
					})
					if err != nil {
						t.Fatalf("%s: %s %s.%s not granted to %s: %v", rbacFile, verb, resource, group, user, err)
					}
				}
			}
		}
	}
}

// decodeFile decodes every document of a multi-document YAML file.
func decodeFile(t *testing.T, file string) []runtime.Object {
	t.Helper()
	return decodeFileWith(t, file, scheme.Codecs.UniversalDeserializer())
}

// decodeFileWith decodes every document of file with dec.
func decodeFileWith(t *testing.T, file string, dec runtime.Decoder) []runtime.Object {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, obj)
	}
}

// kubeconfig writes a kubeconfig for server (host:port, as the agent
// reaches it) with token, trusting the API server's serving certificate.
func (c *cluster) kubeconfig(t *testing.T, server, token string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   "https://" + server,
		CertificateAuthorityData: c.adminCfg.TLSClientConfig.CAData,
		TLSServerName:            c.adminCfg.TLSClientConfig.ServerName,
	}
	kc.AuthInfos["agent"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "agent"}
	kc.CurrentContext = "test"
	file := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, file); err != nil {
		t.Fatal(err)
	}
	return file
}

// agentClient is a client with the agent's ServiceAccount token, from the
// test's namespace.
func (c *cluster) agentClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	cfg := rest.AnonymousClientConfig(c.adminCfg)
	cfg.BearerToken = c.agentToken
	cl, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s", prefix, hex.EncodeToString(b))
}

func ptr[T any](v T) *T { return &v }

// lines returns the lines of s that contain every one of subs.
func lines(s string, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
