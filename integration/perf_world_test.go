package integration

// The world of BenchmarkPerf (make perf): the cluster of issue 10's table,
// written as the manifests a user would keep (one YAML file per namespace
// and kind), and the edits the benchmark makes to it: one pod label of
// another node, one policy of this node. Helpers start with "pf".

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/netpol/netpol/policy/testsnap"
)

// pfLarge is the world of issue 10: 10,000 pods on 100 other nodes, 110
// on this one, 1,000 NetworkPolicies in 50 namespaces. Every namespace
// holds a default-deny-ingress, so every local pod is selected.
func pfLarge() *testsnap.Cluster {
	return testsnap.Generate(testsnap.Config{Seed: 1, Node: bnNodeName, Nodes: 101,
		Namespaces: 50, Pods: 10110, LocalPods: 110, Policies: 1000})
}

// pfSmall is the baseline world of the agent rows: the same kinds of
// objects, 1/100 of them.
func pfSmall() *testsnap.Cluster {
	return testsnap.Generate(testsnap.Config{Seed: 1, Node: bnNodeName, Nodes: 3,
		Namespaces: 10, Pods: 110, LocalPods: 10, Policies: 100})
}

// pfPolicyPort is the port the policy edit allows and takes away again:
// no generated policy or named port uses it.
const pfPolicyPort = 9001

// pfManifests is a cluster kept as manifests in a directory, with the
// objects the benchmark edits.
type pfManifests struct {
	c   *testsnap.Cluster
	dir string
	tmp string // same file system, outside dir: edits are renamed in
	// labelPod is a pod of another node in a namespace labelled
	// monitoring=enabled; its edit gives it app=prometheus (a peer of every
	// allow-monitoring policy) and back.
	labelPod  int
	origApp   string
	labelled  bool
	policyIdx int // the default-deny-ingress of a namespace with local pods
	opened    bool
	renamed   time.Time // when the last edit was renamed into dir
}

// pfWriteManifests writes c into a new directory and picks the edited
// objects.
func pfWriteManifests(b *testing.B, c *testsnap.Cluster) *pfManifests {
	b.Helper()
	m := &pfManifests{c: c, dir: b.TempDir(), tmp: b.TempDir(), labelPod: -1, policyIdx: -1}
	monitored := map[string]bool{}
	for _, ns := range c.Namespaces {
		monitored[ns.Name] = ns.Labels["monitoring"] == "enabled"
	}
	localNS := map[string]bool{}
	for _, p := range c.LocalPods() {
		localNS[p.Namespace] = true
	}
	for i, p := range c.Pods {
		if p.Spec.NodeName != c.Config.Node && monitored[p.Namespace] && len(p.Status.PodIPs) > 0 {
			m.labelPod, m.origApp = i, p.Labels["app"]
			break
		}
	}
	for i, np := range c.Policies {
		if np.Name == "default-deny-ingress" && localNS[np.Namespace] {
			m.policyIdx = i
			break
		}
	}
	if m.labelPod < 0 || m.policyIdx < 0 {
		b.Fatalf("world %+v has no pod of another node in a monitored namespace (%d) or no default-deny-ingress with local pods (%d)",
			c.Config, m.labelPod, m.policyIdx)
	}
	for _, ns := range c.Namespaces {
		if err := m.write(ns.Name); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// labelIP is the address of the pod whose label the benchmark edits.
func (m *pfManifests) labelIP() string { return m.c.Pods[m.labelPod].Status.PodIPs[0].IP }

// toggleLabel flips the edited pod between app=prometheus and its own app.
func (m *pfManifests) toggleLabel() error {
	p := &m.c.Pods[m.labelPod]
	m.labelled = !m.labelled
	p.Labels["app"] = m.origApp
	if m.labelled {
		p.Labels["app"] = "prometheus"
	}
	return m.writeKind(p.Namespace, "pods")
}

// togglePolicy flips the edited default-deny-ingress between denying all
// ingress and allowing TCP pfPolicyPort from anywhere.
func (m *pfManifests) togglePolicy() error {
	np := &m.c.Policies[m.policyIdx]
	m.opened = !m.opened
	np.Spec.Ingress = nil
	if m.opened {
		tcp, port := corev1.ProtocolTCP, intstr.FromInt32(pfPolicyPort)
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}}}}
	}
	return m.writeKind(np.Namespace, "policies")
}

// write writes the three files of namespace ns.
func (m *pfManifests) write(ns string) error {
	for _, kind := range []string{"namespace", "pods", "policies"} {
		if err := m.writeKind(ns, kind); err != nil {
			return err
		}
	}
	return nil
}

// writeKind replaces <ns>-<kind>.yaml atomically (a temporary file outside
// the directory, renamed in), so an agent polling the directory sees one
// change, never half a file.
func (m *pfManifests) writeKind(ns, kind string) error {
	name, data, err := m.encodeKind(ns, kind)
	if err != nil {
		return err
	}
	return m.writeFile(name, data)
}

// encodeKind is the name and YAML of <ns>-<kind>.yaml.
func (m *pfManifests) encodeKind(ns, kind string) (string, []byte, error) {
	var docs []any
	switch kind {
	case "namespace":
		i := slices.IndexFunc(m.c.Namespaces, func(n corev1.Namespace) bool { return n.Name == ns })
		docs = append(docs, m.c.Namespaces[i])
	case "pods":
		for _, p := range m.c.Pods {
			if p.Namespace == ns {
				docs = append(docs, p)
			}
		}
	case "policies":
		for _, np := range m.c.Policies {
			if np.Namespace == ns {
				docs = append(docs, np)
			}
		}
	}
	var sb strings.Builder
	for _, d := range docs {
		y, err := yaml.Marshal(d)
		if err != nil {
			return "", nil, err
		}
		sb.WriteString("---\n")
		sb.Write(y)
	}
	return fmt.Sprintf("%s-%s.yaml", ns, kind), []byte(sb.String()), nil
}

// writeFile replaces the file name of the directory with data atomically.
func (m *pfManifests) writeFile(name string, data []byte) error {
	tmp := filepath.Join(m.tmp, name)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	m.renamed = time.Now()
	return os.Rename(tmp, filepath.Join(m.dir, name))
}

// pfLabelToggler makes the label edit of its pfManifests from files
// encoded beforehand: row 7 times ADDs while the label changes every
// second, and encoding the namespace's pods as YAML each time (tens of
// milliseconds of the harness's CPU, and garbage for its collector) would
// be in the ADDs' time, on both sides of the row.
type pfLabelToggler struct {
	m    *pfManifests
	name string
	data map[bool][]byte // the file with the label edit made (true) or not
}

// labelToggler encodes the label edit's file in both states; it leaves m
// as it found it.
func (m *pfManifests) labelToggler() (*pfLabelToggler, error) {
	t := &pfLabelToggler{m: m, data: map[bool][]byte{}}
	p := &m.c.Pods[m.labelPod]
	for range 2 {
		m.labelled = !m.labelled
		p.Labels["app"] = m.origApp
		if m.labelled {
			p.Labels["app"] = "prometheus"
		}
		var err error
		if t.name, t.data[m.labelled], err = m.encodeKind(p.Namespace, "pods"); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// toggle is m.toggleLabel with the file encoded beforehand.
func (t *pfLabelToggler) toggle() error {
	m := t.m
	p := &m.c.Pods[m.labelPod]
	m.labelled = !m.labelled
	p.Labels["app"] = m.origApp
	if m.labelled {
		p.Labels["app"] = "prometheus"
	}
	return m.writeFile(t.name, t.data[m.labelled])
}

// pfPair picks the two local pods of the traffic rows: a connector the
// policies let out (tier=backend in a prod namespace: backend-egress allows
// all ports to its team's prod namespaces) and a server in the same
// namespace (allow-same-namespace lets it in), so a new connection walks
// the whole egress and ingress dispatch to its group chains before it is
// allowed. The benchmark checks on real traffic that it is allowed.
func pfPair(b *testing.B, c *testsnap.Cluster) (client, server corev1.Pod) {
	b.Helper()
	env := map[string]string{}
	for _, ns := range c.Namespaces {
		env[ns.Name] = ns.Labels["env"]
	}
	local := c.LocalPods()
	for _, cl := range local {
		if cl.Labels["tier"] != "backend" || env[cl.Namespace] != "prod" {
			continue
		}
		for _, sv := range local {
			if sv.Namespace == cl.Namespace && sv.Name != cl.Name {
				return cl, sv
			}
		}
	}
	b.Fatalf("world %+v: no backend pod with a neighbour in a prod namespace on this node", c.Config)
	return
}
