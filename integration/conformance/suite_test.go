package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/netpol/netpol/integration/node"
)

// Probe timeouts. A dropped packet costs two attempts of probeTimeout (the
// harness retries once). A cell expected allowed that looked denied is
// probed once more with recheckTimeout before it counts as a failure, so a
// busy machine cannot turn "allowed" into "denied"; a cell expected denied
// is never re-probed.
const (
	probeTimeout   = 400 * time.Millisecond
	recheckTimeout = 2 * time.Second
)

// ports every pod serves, TCP and UDP.
var servedPorts = []int{80, 81}

// namespaces and podKeys are the topology, in table order.
var (
	namespaces = []string{"x", "y", "z"}
	podKeys    = []string{"x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c"}
)

// Orders.
const (
	podsFirst     = "pods-first"
	policiesFirst = "policies-first"
)

// tcase is one upstream test.
type tcase struct {
	slug     string // subtest name
	upstream string // the upstream It() text
	steps    []step
}

// step is a change to the cluster, then what connectivity must be.
type step struct {
	what string
	// apply creates or replaces NetworkPolicies (by namespace/name); the
	// YAML is the body given to np, rendered as a text/template with
	// {{ip "y/b"}}, {{host "y/b"}} (its /32) and {{big "y/b"}} (the /4
	// around it) from the pods' IPs.
	apply []string
	// remove deletes NetworkPolicies given as "namespace/name".
	remove []string
	// podLabels and nsLabels add labels to pods ("x/b") and namespaces.
	podLabels map[string]map[string]string
	nsLabels  map[string]map[string]string
	expect    []expect
	// skipped lists probes that this kernel cannot carry (SCTP).
	skipped []string
}

// expect is the truth table of one (protocol, port).
type expect struct {
	proto string
	port  int
	grid  string
}

func tcp(port int, grid string) expect { return expect{"tcp", port, grid} }
func udp(port int, grid string) expect { return expect{"udp", port, grid} }

// np is a NetworkPolicy manifest: namespace, name and its spec as YAML
// (indented freely: the common indentation is removed).
func np(namespace, name, spec string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: %q\n  namespace: %q\nspec:\n", name, namespace)
	for _, l := range dedent(spec) {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// dedent drops blank lines at both ends and the indentation common to all
// non-blank lines.
func dedent(s string) []string {
	lines := strings.Split(s, "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	prefix, first := "", true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		ind := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = ind, false
			continue
		}
		for !strings.HasPrefix(ind, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimPrefix(l, prefix)
	}
	return out
}

// parseGrid reads a truth table: one line per source pod in podKeys
// order, "x/a  .XX ... ...", the pod's label then one cell per destination
// in podKeys order ('.' allowed, 'X' denied; spaces ignored). The diagonal
// must be '.' (see the package comment).
func parseGrid(s string) (*node.Table, error) {
	want := node.NewTable(podKeys, podKeys, false)
	var rows []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			rows = append(rows, l)
		}
	}
	if len(rows) != len(podKeys) {
		return nil, fmt.Errorf("grid has %d rows, want %d", len(rows), len(podKeys))
	}
	for i, r := range rows {
		f := strings.Fields(r)
		if len(f) == 0 || f[0] != podKeys[i] {
			return nil, fmt.Errorf("grid row %d is %q, want it to start with %s", i+1, r, podKeys[i])
		}
		cells := strings.Join(f[1:], "")
		if len(cells) != len(podKeys) {
			return nil, fmt.Errorf("grid row %s has %d cells, want %d", podKeys[i], len(cells), len(podKeys))
		}
		for j, c := range cells {
			switch c {
			case '.':
				want.Allowed[i][j] = true
			case 'X':
			default:
				return nil, fmt.Errorf("grid row %s: cell %q is not '.' or 'X'", podKeys[i], c)
			}
		}
		if !want.Allowed[i][i] {
			return nil, fmt.Errorf("grid row %s: the diagonal (a pod to itself) must be '.'", podKeys[i])
		}
	}
	return want, nil
}

// usesIPs reports whether a case's policies depend on pod IPs.
func (c *tcase) usesIPs() bool {
	for _, s := range c.steps {
		for _, p := range s.apply {
			if strings.Contains(p, "{{") {
				return true
			}
		}
	}
	return false
}

// render fills a policy template with pod IPs and returns it with its
// "namespace/name".
func render(tmpl string, ips map[string]string) (yamlText, key string, err error) {
	lookup := func(pod string) (net.IP, error) {
		ip := net.ParseIP(ips[pod]).To4()
		if ip == nil {
			return nil, fmt.Errorf("no IPv4 address for pod %q", pod)
		}
		return ip, nil
	}
	funcs := template.FuncMap{
		"ip": func(pod string) (string, error) {
			ip, err := lookup(pod)
			return ip.String(), err
		},
		"host": func(pod string) (string, error) {
			ip, err := lookup(pod)
			return ip.String() + "/32", err
		},
		// big is the /4 that holds the pod's address: "many many other IPs
		// around the pod", as upstream's except cases want.
		"big": func(pod string) (string, error) {
			ip, err := lookup(pod)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s/4", ip.Mask(net.CIDRMask(4, 32))), nil
		},
	}
	t, err := template.New("policy").Option("missingkey=error").Funcs(funcs).Parse(tmpl)
	if err != nil {
		return "", "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		return "", "", err
	}
	// Decode as the agent does (YAML 1.1 to JSON with no target type, so
	// an unquoted y is a boolean), then into the API type, strictly.
	var p networkingv1.NetworkPolicy
	j, err := yaml.YAMLToJSONStrict(b.Bytes())
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		err = dec.Decode(&p)
	}
	if err != nil {
		return "", "", fmt.Errorf("policy does not parse: %w\n%s", err, b.String())
	}
	if p.Namespace == "" || p.Name == "" {
		return "", "", fmt.Errorf("policy lacks a namespace or name:\n%s", b.String())
	}
	return b.String(), p.Namespace + "/" + p.Name, nil
}

// topology is where the suite runs: how many nodes (pods placed
// round-robin, so on three nodes most pairs cross nodes through the routed
// path) and which CNI chain.
type topology struct {
	name    string
	nodes   int
	flannel bool // flannel -> netpol -> portmap (cniVersion 0.4.0) instead of bridge -> netpol
}

var topologies = []topology{
	{name: "one-node", nodes: 1},
	{name: "three-nodes-bridge", nodes: 3},
	{name: "three-nodes-flannel", nodes: 3, flannel: true},
}

// predictedIPs is where host-local puts the pods on fresh nodes when they
// are added one by one in podKeys order, placed round-robin: on one node
// 10.244.1.2, .3, ...; on three, 10.244.1.2, 10.244.2.2, 10.244.3.2,
// 10.244.1.3, ...
func predictedIPs(nodes int) map[string]string {
	out := map[string]string{}
	for i, k := range podKeys {
		out[k] = fmt.Sprintf("10.244.%d.%d", i%nodes+1, 2+i/nodes)
	}
	return out
}

// cluster is a node, its nine pods and the manifest directory the agent
// reads, with the state the manifests describe.
type cluster struct {
	topo     topology
	c        *node.Cluster
	n        *node.Node
	dir      string
	pods     map[string]*node.Pod
	ips      map[string]string
	policies map[string]string            // "ns/name" -> YAML
	podLbl   map[string]map[string]string // labels added to pods
	nsLbl    map[string]map[string]string // labels added to namespaces
}

func newCluster(t *testing.T, topo topology) *cluster {
	t.Helper()
	o := node.ClusterOptions{Nodes: topo.nodes}
	if topo.flannel {
		cl, err := node.RepoFile("10-policy-flannel.conflist")
		if err != nil {
			t.Fatal(err)
		}
		o.Node.Conflist, o.FlannelDaemon = cl, true
	}
	cl := node.NewCluster(t, o)
	return &cluster{topo: topo, c: cl, n: cl.Nodes[0], dir: t.TempDir(), pods: map[string]*node.Pod{}}
}

// reset returns the described state to the plain topology with no policy.
func (c *cluster) reset() {
	c.policies = map[string]string{}
	c.podLbl = map[string]map[string]string{}
	c.nsLbl = map[string]map[string]string{}
}

// change applies a step's changes to the described state (not to disk).
func (c *cluster) change(s step) error {
	for _, p := range s.apply {
		text, key, err := render(p, c.ips)
		if err != nil {
			return err
		}
		c.policies[key] = text
	}
	for _, key := range s.remove {
		if _, ok := c.policies[key]; !ok {
			return fmt.Errorf("remove %s: no such policy", key)
		}
		delete(c.policies, key)
	}
	for k, lbl := range s.podLabels {
		if !slices.Contains(podKeys, k) {
			return fmt.Errorf("labels for unknown pod %q", k)
		}
		c.podLbl[k] = mergeLabels(c.podLbl[k], lbl)
	}
	for k, lbl := range s.nsLabels {
		if !slices.Contains(namespaces, k) {
			return fmt.Errorf("labels for unknown namespace %q", k)
		}
		c.nsLbl[k] = mergeLabels(c.nsLbl[k], lbl)
	}
	return nil
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

// worldYAML renders the namespaces and pods (no IPs: CNI ADD records them).
func (c *cluster) worldYAML() string {
	var b strings.Builder
	for _, ns := range namespaces {
		lbl := mergeLabels(map[string]string{"ns": ns}, c.nsLbl[ns])
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %q\n  labels: %s\n", ns, flowMap(lbl))
	}
	for i, k := range podKeys {
		ns, name, _ := strings.Cut(k, "/")
		lbl := mergeLabels(map[string]string{"pod": name}, c.podLbl[k])
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %q\n  namespace: %q\n  labels: %s\n", name, ns, flowMap(lbl))
		if ip := c.ips[k]; ip != "" {
			fmt.Fprintf(&b, "status:\n  podIPs:\n  - ip: %s\n", ip)
		}
		fmt.Fprintf(&b, "spec:\n  nodeName: %s\n  containers:\n", c.c.Place(i).Name)
		for _, port := range servedPorts {
			for _, proto := range []string{"tcp", "udp"} {
				fmt.Fprintf(&b, "  - name: cont-%d-%s\n    image: agnhost\n    ports:\n    - {containerPort: %d, name: serve-%d-%s, protocol: %s}\n",
					port, proto, port, port, proto, strings.ToUpper(proto))
			}
		}
	}
	return b.String()
}

func flowMap(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q: %q", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// write puts the described state into the manifest directory.
func (c *cluster) write(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, "00-world.yaml"), []byte(c.worldYAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(c.dir, "10-policies.yaml")
	if len(c.policies) == 0 {
		if err := os.Remove(pol); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return
	}
	keys := slices.Sorted(maps.Keys(c.policies))
	docs := make([]string, len(keys))
	for i, k := range keys {
		docs[i] = c.policies[k]
	}
	if err := os.WriteFile(pol, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sync runs one `netpol-agent --manifests DIR --once`.
func (c *cluster) sync(t *testing.T) {
	t.Helper()
	if err := c.c.RunAgents("--manifests", c.dir, "--once"); err != nil {
		t.Fatalf("agent sync: %v\nmanifests:\n%s", err, c.manifests())
	}
}

// manifests returns the policies as written, for failure messages.
func (c *cluster) manifests() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "10-policies.yaml"))
	return string(b)
}

// addPods creates the nine pods one by one in podKeys order through CNI
// ADD and makes each serve TCP and UDP on 80 and 81.
func (c *cluster) addPods(t *testing.T) {
	t.Helper()
	c.ips = map[string]string{}
	for i, k := range podKeys {
		ns, name, _ := strings.Cut(k, "/")
		p, err := c.c.Place(i).AddPod(ns, name)
		if err != nil {
			t.Fatalf("CNI ADD %s: %v", k, err)
		}
		if err := p.Serve(servedPorts...); err != nil {
			t.Fatal(err)
		}
		c.pods[k] = p
		c.ips[k] = p.IP
	}
}

func (c *cluster) podList() []*node.Pod {
	out := make([]*node.Pod, len(podKeys))
	for i, k := range podKeys {
		out[i] = c.pods[k]
	}
	return out
}

// matrix probes every (source, destination) pair at once.
func matrix(pods []*node.Pod, proto string, port int) *node.Table {
	got := node.NewTable(node.Labels(pods), node.Labels(pods), false)
	var wg sync.WaitGroup
	for i, from := range pods {
		for j, to := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got.Allowed[i][j] = node.Probe(from, to.Addr(), proto, port, probeTimeout)
			}()
		}
	}
	wg.Wait()
	return got
}

// outcome is the result of checking one truth table.
type outcome struct {
	e         expect
	got, want *node.Table
	rechecked []string // cells expected allowed that needed a second look
	diff      []string
}

// check probes one table; cells expected allowed but seen denied are
// probed once more, slowly, before they count.
func check(pods []*node.Pod, e expect, want *node.Table) outcome {
	got := matrix(pods, e.proto, e.port)
	o := outcome{e: e, got: got, want: want}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range pods {
		for j := range pods {
			if want.Allowed[i][j] && !got.Allowed[i][j] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok := node.ProbeOnce(pods[i], pods[j].Addr(), e.proto, e.port, recheckTimeout) == nil
					mu.Lock()
					defer mu.Unlock()
					o.rechecked = append(o.rechecked, fmt.Sprintf("%s->%s:%v", podKeys[i], podKeys[j], ok))
					got.Allowed[i][j] = ok
				}()
			}
		}
	}
	wg.Wait()
	sort.Strings(o.rechecked)
	o.diff = got.Diff(want)
	return o
}

// verify probes every table of a step at once and reports mismatches.
func (c *cluster) verify(t *testing.T, stepName string, s step) {
	t.Helper()
	for _, sk := range s.skipped {
		t.Logf("%s: skipped %s (no SCTP in this kernel)", stepName, sk)
	}
	pods := c.podList()
	outs := make([]outcome, len(s.expect))
	var wg sync.WaitGroup
	for i, e := range s.expect {
		want, err := parseGrid(e.grid)
		if err != nil {
			t.Fatalf("%s %s/%d: %v", stepName, e.proto, e.port, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = check(pods, e, want)
		}()
	}
	wg.Wait()
	for _, o := range outs {
		if len(o.rechecked) > 0 {
			t.Logf("%s %s/%d: re-probed cells that first looked denied: %s", stepName, o.e.proto, o.e.port,
				strings.Join(o.rechecked, " "))
		}
		if len(o.diff) > 0 {
			t.Errorf("%s, %s/%d: %d cells differ:\n  %s\ngot:\n%s\nwant:\n%s\npolicies:\n%s", stepName, o.e.proto, o.e.port,
				len(o.diff), strings.Join(o.diff, "\n  "), o.got, o.want, c.manifests())
		}
	}
}

// stepName names step i of a case in messages.
func stepName(i int, s step) string {
	if s.what == "" {
		return fmt.Sprintf("step %d", i+1)
	}
	return fmt.Sprintf("step %d (%s)", i+1, s.what)
}

// runPodsFirst plays a case on the shared node whose pods already exist.
func runPodsFirst(t *testing.T, c *cluster, tc *tcase) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("state of node %s at failure:\n%s", c.n.Name, c.n.Dump())
		}
	})
	c.reset()
	c.write(t)
	c.sync(t)
	for i, s := range tc.steps {
		if err := c.change(s); err != nil {
			t.Fatalf("%s: %v", stepName(i, s), err)
		}
		c.write(t)
		c.sync(t)
		c.verify(t, stepName(i, s), s)
	}
}

// runPoliciesFirst plays a case on a fresh node: manifests and policies
// first, then the pods, probed with no sync after their ADD.
func runPoliciesFirst(t *testing.T, topo topology, tc *tcase) {
	c := newCluster(t, topo)
	c.reset()
	c.ips = predictedIPs(topo.nodes)
	for i, s := range tc.steps {
		if err := c.change(s); err != nil {
			t.Fatalf("%s: %v", stepName(i, s), err)
		}
		c.write(t)
		c.sync(t)
		if i == 0 {
			predicted := c.ips
			c.addPods(t)
			if tc.usesIPs() {
				for _, k := range podKeys {
					if c.ips[k] != predicted[k] {
						t.Fatalf("pod %s got IP %s, but its policies were written for %s (host-local allocation order changed?)",
							k, c.ips[k], predicted[k])
					}
				}
			}
		}
		c.verify(t, stepName(i, s), s)
	}
}

// TestCasesWellFormed checks the case table itself: names, grids and
// policies. It needs no root.
func TestCasesWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.slug] || tc.slug == "" || tc.upstream == "" {
			t.Errorf("case %q: empty or duplicate name", tc.slug)
		}
		seen[tc.slug] = true
		c := &cluster{ips: predictedIPs(1)}
		c.reset()
		if len(tc.steps) == 0 {
			t.Errorf("case %s: no steps", tc.slug)
		}
		for i, s := range tc.steps {
			if err := c.change(s); err != nil {
				t.Errorf("case %s %s: %v", tc.slug, stepName(i, s), err)
			}
			if len(s.expect) == 0 {
				t.Errorf("case %s %s: no expectation", tc.slug, stepName(i, s))
			}
			probes := map[string]bool{}
			for _, e := range s.expect {
				if _, err := parseGrid(e.grid); err != nil {
					t.Errorf("case %s %s %s/%d: %v", tc.slug, stepName(i, s), e.proto, e.port, err)
				}
				id := fmt.Sprintf("%s/%d", e.proto, e.port)
				if probes[id] || !slices.Contains(servedPorts, e.port) || (e.proto != "tcp" && e.proto != "udp") {
					t.Errorf("case %s %s: bad or duplicate probe %s", tc.slug, stepName(i, s), id)
				}
				probes[id] = true
			}
		}
	}
}

// TestConformance runs every case in both orders on every topology.
func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) { runTopology(t, topo) })
	}
}

func runTopology(t *testing.T, topo topology) {
	start := time.Now()
	var spent = map[string]time.Duration{}

	// The pods-first cluster: nine pods created first, then the agents learn
	// them with no policy; every pods-first case starts from there.
	shared := newCluster(t, topo)
	shared.reset()
	shared.addPods(t)
	shared.write(t)
	shared.sync(t)
	baseline := step{what: "no policy", expect: []expect{
		tcp(80, allAllowed), tcp(81, allAllowed), udp(80, allAllowed), udp(81, allAllowed)}}
	shared.verify(t, "baseline", baseline)
	if t.Failed() {
		t.FailNow()
	}
	spent["setup"] = time.Since(start)

	ran := 0
	for i := range cases {
		tc := &cases[i]
		t.Run(tc.slug, func(t *testing.T) {
			ran++
			t.Logf("upstream: %q", tc.upstream)
			t.Run(podsFirst, func(t *testing.T) {
				s := time.Now()
				defer func() { spent[podsFirst] += time.Since(s) }()
				runPodsFirst(t, shared, tc)
			})
			t.Run(policiesFirst, func(t *testing.T) {
				s := time.Now()
				defer func() { spent[policiesFirst] += time.Since(s) }()
				runPoliciesFirst(t, topo, tc)
			})
		})
	}
	t.Logf("%s: %d of %d cases, both orders, in %v (setup %v, pods-first %v, policies-first %v)", topo.name, ran, len(cases),
		time.Since(start).Round(time.Millisecond), spent["setup"].Round(time.Millisecond),
		spent[podsFirst].Round(time.Millisecond), spent[policiesFirst].Round(time.Millisecond))
}
