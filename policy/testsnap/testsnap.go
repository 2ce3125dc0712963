// Package testsnap generates big, deterministic, realistic-looking clusters
// for netpol's benchmarks: namespaces of teams and environments, pods of
// deployments with the usual labels and named ports, spread over many nodes,
// and NetworkPolicies of the kinds people write (default deny, allow from a
// tier, from labelled namespaces, from ipBlocks with excepts, DNS egress,
// named ports, matchExpressions, port ranges).
//
// The same cluster is available as Kubernetes objects (written as manifests
// for netpol-agent --manifests) and as the policy.Snapshot the manifest
// loader makes of them; TestSnapshotMatchesManifests keeps the two equal.
// Everything derives from Config.Seed: the same Config gives the same bytes.
package testsnap

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/policy"
)

// Config sizes a cluster.
type Config struct {
	Seed       int64
	Node       string // this node's name: LocalPods pods are scheduled on it
	Nodes      int    // nodes in the cluster, this one included
	Namespaces int
	Pods       int // in the whole cluster
	LocalPods  int // of Pods, on Node
	Policies   int
}

// Large is the cluster of the benchmarks: 10,000 pods over 100 namespaces
// and 100 nodes (100 of the pods on node), 1,000 NetworkPolicies.
func Large(node string) Config {
	return Config{Seed: 1, Node: node, Nodes: 100, Namespaces: 100, Pods: 10000, LocalPods: 100, Policies: 1000}
}

// Cluster is a generated cluster.
type Cluster struct {
	Config     Config
	Namespaces []corev1.Namespace
	Pods       []corev1.Pod // sorted by namespace/name
	Policies   []networkingv1.NetworkPolicy
}

// NodeName is the name of node i (0 is Config.Node).
func (c *Cluster) NodeName(i int) string {
	if i == 0 {
		return c.Config.Node
	}
	return fmt.Sprintf("worker-%03d", i)
}

// LocalPods returns the pods on Config.Node. They carry no status.podIPs:
// this node's pods get their addresses from CNI ADD.
func (c *Cluster) LocalPods() []corev1.Pod {
	var out []corev1.Pod
	for _, p := range c.Pods {
		if p.Spec.NodeName == c.Config.Node {
			out = append(out, p)
		}
	}
	return out
}

// LocalIP is the address the i-th local pod gets on a node whose pod subnet
// is 10.244.1.0/24 (the integration harness default), i < 250.
func LocalIP(i int) string { return fmt.Sprintf("10.244.1.%d", 2+i) }

var (
	teams = []string{"payments", "checkout", "catalog", "search", "accounts", "billing", "orders",
		"shipping", "inventory", "reviews", "ads", "analytics", "identity", "notify", "media",
		"pricing", "fraud", "loyalty", "support", "platform"}
	envs = []string{"prod", "staging", "dev", "qa", "perf"}
	// apps are the deployments of a namespace: name, tier, named ports.
	apps = []struct {
		name, tier string
		ports      []corev1.ContainerPort
	}{
		{"web", "frontend", []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}}},
		{"api", "backend", []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "grpc", ContainerPort: 9000}, {Name: "metrics", ContainerPort: 9090}}},
		{"worker", "backend", []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}}},
		{"gateway", "frontend", []corev1.ContainerPort{{Name: "https", ContainerPort: 8443}, {Name: "metrics", ContainerPort: 9090}}},
		{"db", "data", []corev1.ContainerPort{{Name: "postgres", ContainerPort: 5432}}},
		{"cache", "data", []corev1.ContainerPort{{Name: "redis", ContainerPort: 6379}}},
		{"queue", "data", []corev1.ContainerPort{{Name: "amqp", ContainerPort: 5672}, {Name: "dns-udp", ContainerPort: 5353, Protocol: corev1.ProtocolUDP}}},
		{"scheduler", "backend", nil},
	}
	letters = []byte("bcdfghjklmnpqrstvwxz2456789")
)

// Generate makes the cluster of cfg.
func Generate(cfg Config) *Cluster {
	r := rand.New(rand.NewSource(cfg.Seed))
	c := &Cluster{Config: cfg}
	nsNames := make([]string, cfg.Namespaces)
	nsTeam := map[string]string{}
	for i := range nsNames {
		team, env := teams[i%len(teams)], envs[(i/len(teams))%len(envs)]
		name := team + "-" + env
		if i >= len(teams)*len(envs) {
			name = fmt.Sprintf("%s-%d", name, i/(len(teams)*len(envs)))
		}
		if i == 0 {
			name, team, env = "kube-system", "platform", "prod"
		}
		nsNames[i], nsTeam[name] = name, team
		labels := map[string]string{"team": team, "env": env}
		if r.Intn(3) == 0 {
			labels["monitoring"] = "enabled"
		}
		if env == "prod" {
			labels["pod-security.kubernetes.io/enforce"] = "restricted"
		}
		c.Namespaces = append(c.Namespaces, corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		})
	}

	// Pods: deployments of the apps, round-robin over namespaces.
	for i := 0; i < cfg.Pods; i++ {
		ns := nsNames[i%len(nsNames)]
		app := apps[r.Intn(len(apps))]
		labels := map[string]string{
			"app":                    app.name,
			"app.kubernetes.io/name": app.name,
			"tier":                   app.tier,
			"version":                fmt.Sprintf("v%d", 1+r.Intn(3)),
			"pod-template-hash":      randString(r, 10),
		}
		if ns == "kube-system" && i%7 == 0 {
			labels = map[string]string{"k8s-app": "kube-dns", "pod-template-hash": randString(r, 10)}
			app.ports = []corev1.ContainerPort{{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", ContainerPort: 53}}
		}
		if r.Intn(10) == 0 {
			labels["canary"] = "true"
		}
		c.Pods = append(c.Pods, corev1.Pod{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Labels: labels,
				Name: app.name + "-" + labels["pod-template-hash"] + "-" + randString(r, 5)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "main", Image: "registry.example/" + app.name + ":1", Ports: slices.Clone(app.ports)}}},
		})
	}
	// Nodes: LocalPods pods picked at random go to this node, the others
	// round-robin to the other nodes, each with its own /24 of 10.244/16.
	local := map[int]bool{}
	for _, i := range r.Perm(cfg.Pods)[:min(cfg.LocalPods, cfg.Pods)] {
		local[i] = true
	}
	perNode := make([]int, cfg.Nodes)
	k := 0
	for i := range c.Pods {
		p := &c.Pods[i]
		if local[i] || cfg.Nodes < 2 {
			p.Spec.NodeName = cfg.Node
			continue
		}
		node := 1 + k%(cfg.Nodes-1)
		k++
		p.Spec.NodeName = c.NodeName(node)
		ip := fmt.Sprintf("10.%d.%d.%d", 244+(node+1)/256, (node+1)%256, 2+perNode[node])
		perNode[node]++
		p.Status.PodIP = ip
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	slices.SortFunc(c.Pods, func(a, b corev1.Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})

	for i := 0; i < cfg.Policies; i++ {
		ns := nsNames[i%len(nsNames)]
		c.Policies = append(c.Policies, genPolicy(r, ns, nsTeam[ns], i/len(nsNames), nsNames))
	}
	return c
}

func randString(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.Intn(len(letters))]
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

func tcpPort(p int32) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr(corev1.ProtocolTCP), Port: ptr(intstr.FromInt32(p))}
}

func namedPort(name string) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromString(name))}
}

func matchLabels(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

// genPolicy makes the nth policy of namespace ns, of one of ten kinds.
func genPolicy(r *rand.Rand, ns, team string, nth int, nsNames []string) networkingv1.NetworkPolicy {
	app := apps[r.Intn(len(apps))].name
	block := func() string { return fmt.Sprintf("%d.%d.%d.0/24", 100+r.Intn(100), r.Intn(256), r.Intn(256)) }
	np := networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns},
	}
	s := &np.Spec
	switch nth % 10 {
	case 0:
		np.Name = "default-deny-ingress"
		s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 1:
		np.Name = "allow-" + app + "-from-frontend"
		s.PodSelector = *matchLabels("app", app)
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: matchLabels("tier", "frontend")}},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort(8080), tcpPort(9000)},
		}}
	case 2:
		np.Name = "allow-monitoring"
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: matchLabels("monitoring", "enabled"),
				PodSelector:       matchLabels("app", "prometheus"),
			}},
			Ports: []networkingv1.NetworkPolicyPort{namedPort("metrics")},
		}}
	case 3:
		np.Name = "allow-backend-from-team"
		s.PodSelector = *matchLabels("tier", "backend")
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: matchLabels("team", team)}},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort(8080), namedPort("grpc")},
		}}
	case 4:
		np.Name = "allow-" + app + "-from-partners"
		s.PodSelector = *matchLabels("app", app)
		wide := fmt.Sprintf("%d.%d.0.0/16", 100+r.Intn(100), r.Intn(256))
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: wide, Except: []string{wide[:len(wide)-6] + fmt.Sprintf("%d.0/24", r.Intn(256))}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: block()}},
			},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort(443), tcpPort(80)},
		}}
	case 5:
		np.Name = "allow-dns-egress"
		s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		s.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: matchLabels("kubernetes.io/metadata.name", "kube-system"),
				PodSelector:       matchLabels("k8s-app", "kube-dns"),
			}},
			Ports: []networkingv1.NetworkPolicyPort{
				{Protocol: ptr(corev1.ProtocolUDP), Port: ptr(intstr.FromInt32(53))}, tcpPort(53)},
		}}
	case 6:
		np.Name = "backend-egress"
		s.PodSelector = *matchLabels("tier", "backend")
		s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		s.Egress = []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{{PodSelector: matchLabels("tier", "data")}},
				Ports: []networkingv1.NetworkPolicyPort{namedPort("postgres"), namedPort("redis"), tcpPort(5672)}},
			{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.96.0.0/12"}}},
				Ports: []networkingv1.NetworkPolicyPort{tcpPort(443)}},
			{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: matchLabels("team", team, "env", "prod")}}},
		}
	case 7:
		np.Name = "allow-nodeports-" + app
		s.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{app, "api", "worker"}},
			{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
		}}
		other := nsNames[r.Intn(len(nsNames))]
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "version", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"v1"}},
					{Key: "tier", Operator: metav1.LabelSelectorOpExists},
				}}},
				{NamespaceSelector: matchLabels("kubernetes.io/metadata.name", other), PodSelector: matchLabels("app", "gateway")},
			},
			Ports: []networkingv1.NetworkPolicyPort{
				{Protocol: ptr(corev1.ProtocolTCP), Port: ptr(intstr.FromInt32(30000)), EndPort: ptr(int32(32767))},
				{Protocol: ptr(corev1.ProtocolUDP), Port: ptr(intstr.FromInt32(30000)), EndPort: ptr(int32(30100))},
			},
		}}
	case 8:
		np.Name = "allow-same-namespace"
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
		}}
	default:
		np.Name = "allow-" + app + "-internet-egress"
		s.PodSelector = *matchLabels("app", app)
		s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		s.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
				CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", block()}}}},
			Ports: []networkingv1.NetworkPolicyPort{tcpPort(443)},
		}}
	}
	if nth >= 10 {
		np.Name = fmt.Sprintf("%s-%d", np.Name, nth/10)
	}
	np.Labels = map[string]string{"app.kubernetes.io/managed-by": "helm", "team": team}
	return np
}

// Snapshot returns the snapshot netpol-agent makes of the cluster's
// manifests (see agent/manifest), as node Config.Node.
func (c *Cluster) Snapshot() *policy.Snapshot {
	s := &policy.Snapshot{Version: policy.SnapshotVersion, Node: c.Config.Node}
	for _, ns := range c.Namespaces {
		labels := maps.Clone(ns.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels["kubernetes.io/metadata.name"] = ns.Name
		s.Namespaces = append(s.Namespaces, policy.Namespace{Name: ns.Name, Labels: labels})
	}
	slices.SortFunc(s.Namespaces, func(a, b policy.Namespace) int { return cmp.Compare(a.Name, b.Name) })
	for _, p := range c.Pods {
		sp := policy.Pod{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, Labels: nilIfEmpty(p.Labels)}
		for _, ip := range p.Status.PodIPs {
			sp.IPs = append(sp.IPs, ip.IP)
		}
		for _, ctr := range p.Spec.Containers {
			for _, port := range ctr.Ports {
				if port.Name != "" {
					sp.Ports = append(sp.Ports, policy.NamedPort{Name: port.Name,
						Protocol: cmp.Or(port.Protocol, corev1.ProtocolTCP), Port: port.ContainerPort})
				}
			}
		}
		s.Pods = append(s.Pods, sp)
	}
	slices.SortFunc(s.Pods, func(a, b policy.Pod) int { return cmp.Compare(a.Key(), b.Key()) })
	for _, np := range c.Policies {
		s.Policies = append(s.Policies, networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: np.Namespace, Name: np.Name, Labels: nilIfEmpty(np.Labels)},
			Spec:       np.Spec,
		})
	}
	slices.SortFunc(s.Policies, func(a, b networkingv1.NetworkPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return s
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// Attachments returns what CNI ADD would have recorded for the first n
// local pods (addresses LocalIP(0..n-1)).
func (c *Cluster) Attachments(n int) []policy.Attachment {
	var out []policy.Attachment
	for i, p := range c.LocalPods() {
		if i >= n {
			break
		}
		out = append(out, policy.Attachment{
			ContainerID: fmt.Sprintf("%064x", i+1), IfName: "eth0",
			Namespace: p.Namespace, Name: p.Name, IPs: []string{LocalIP(i)},
		})
	}
	return out
}

// WriteManifests writes the cluster into dir as three v1 List files
// (namespaces, pods, policies) that netpol-agent --manifests reads.
func (c *Cluster) WriteManifests(dir string) error {
	files := []struct {
		name  string
		items []any
	}{
		{"00-namespaces.json", toAny(c.Namespaces)},
		{"10-pods.json", toAny(c.Pods)},
		{"20-networkpolicies.json", toAny(c.Policies)},
	}
	for _, f := range files {
		data, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": f.items})
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func toAny[T any](in []T) []any {
	out := make([]any, len(in))
	for i := range in {
		out[i] = in[i]
	}
	return out
}
