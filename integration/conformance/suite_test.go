package conformance

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// Probe timeouts. A dropped packet costs two attempts of probeTimeout (the
// harness retries once). A cell expected allowed that looked denied is
// probed again, one attempt per recheckTimeouts entry until one connects,
// before it counts as a failure, so a busy machine cannot turn "allowed"
// into "denied" (the short first timeout is backed by this positive
// control); a cell expected denied is never re-probed: a connection that
// opens cannot be an artefact of load.
const probeTimeout = 400 * time.Millisecond

var recheckTimeouts = []time.Duration{2 * time.Second, 5 * time.Second}

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
	// {{ip "y/b"}}, {{host "y/b"}} (its /32, or /128) and {{big "y/b"}}
	// (the /4, or /16, around it) from the pods' IPs of the mode's family
	// (see render in family_test.go for dual-stack).
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

// topology is where the suite runs: how many nodes (pods placed
// round-robin, so on three nodes most pairs cross nodes through the routed
// path), which CNI chain, and which address families the pods have (every
// cell is probed over each of them). See family_test.go for the modes.
type topology struct {
	name    string
	nodes   int
	flannel bool // flannel -> netpol -> portmap (cniVersion 0.4.0) instead of bridge -> netpol
	family  node.Family
}

// cluster is a node, its nine pods and the manifest directory the agent
// reads, with the state the manifests describe.
type cluster struct {
	topo     topology
	c        *node.Cluster
	n        *node.Node
	dir      string
	pods     map[string]*node.Pod
	ips      addrs
	policies map[string]string            // "ns/name" -> YAML
	podLbl   map[string]map[string]string // labels added to pods
	nsLbl    map[string]map[string]string // labels added to namespaces
}

func newCluster(t *testing.T, topo topology) *cluster {
	t.Helper()
	o := node.ClusterOptions{Nodes: topo.nodes, Node: node.Options{Family: topo.family}}
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
		text, key, err := render(p, c.ips, c.topo.family)
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
		if ip4, ip6 := c.ips.v4[k], c.ips.v6[k]; ip4 != "" || ip6 != "" {
			b.WriteString("status:\n  podIPs:\n")
			for _, ip := range []string{ip4, ip6} {
				if ip != "" {
					fmt.Fprintf(&b, "  - ip: %s\n", ip)
				}
			}
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
	c.ips = addrs{v4: map[string]string{}, v6: map[string]string{}}
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
		c.ips.v4[k], c.ips.v6[k] = p.IP, p.IP6
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
func matrix(pods []*node.Pod, fam node.Family, proto string, port int) *node.Table {
	got := node.NewTable(node.Labels(pods), node.Labels(pods), false)
	var wg sync.WaitGroup
	for i, from := range pods {
		for j, to := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				probeSlots <- struct{}{}
				defer func() { <-probeSlots }()
				got.Allowed[i][j] = node.Probe(from, to.AddrIn(fam), proto, port, probeTimeout)
			}()
		}
	}
	wg.Wait()
	return got
}

// probeSlots bounds the probes in flight across every table of a step
// (dual-stack doubles them): each holds a socket and, while it dials, an
// OS thread locked into a pod's namespace.
var probeSlots = make(chan struct{}, 128)

// outcome is the result of checking one truth table over one family.
type outcome struct {
	e         expect
	fam       node.Family
	got, want *node.Table
	rechecked []string // cells expected allowed that needed a second look
	diff      []string
}

// check probes one table; cells expected allowed but seen denied are
// probed once more, slowly, before they count.
func check(pods []*node.Pod, fam node.Family, e expect, want *node.Table) outcome {
	got := matrix(pods, fam, e.proto, e.port)
	o := outcome{e: e, fam: fam, got: got, want: want}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range pods {
		for j := range pods {
			if want.Allowed[i][j] && !got.Allowed[i][j] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok := false
					for _, timeout := range recheckTimeouts {
						if ok = node.ProbeOnce(pods[i], pods[j].AddrIn(fam), e.proto, e.port, timeout) == nil; ok {
							break
						}
					}
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

// verify probes every table of a step, over every family of the mode, at
// once and reports mismatches. A table means the same in each family: the
// pods' addresses of that family are its rows and columns.
func (c *cluster) verify(t *testing.T, stepName string, s step) {
	t.Helper()
	for _, sk := range s.skipped {
		t.Logf("%s: skipped %s (no SCTP in this kernel)", stepName, sk)
	}
	// The probes stand for new connections, as upstream's do (each of its
	// cases runs in new namespaces with new pods). The nodes of a
	// pods-first case still track the flows that earlier cases and steps
	// allowed, and netpol lets established traffic through before any
	// policy: a UDP probe whose random source port repeats one of them
	// would pass as that flow's traffic.
	for _, n := range c.c.Nodes {
		if err := n.FlushConntrack(); err != nil {
			t.Fatalf("%s: %v", stepName, err)
		}
	}
	pods := c.podList()
	var outs []*outcome
	var wg sync.WaitGroup
	for _, e := range s.expect {
		want, err := parseGrid(e.grid)
		if err != nil {
			t.Fatalf("%s %s/%d: %v", stepName, e.proto, e.port, err)
		}
		for _, fam := range c.topo.family.Single() {
			o := &outcome{}
			outs = append(outs, o)
			wg.Add(1)
			go func() {
				defer wg.Done()
				*o = check(pods, fam, e, want)
			}()
		}
	}
	wg.Wait()
	for _, o := range outs {
		if len(o.rechecked) > 0 {
			t.Logf("%s %s %s/%d: re-probed cells that first looked denied: %s", stepName, o.fam, o.e.proto, o.e.port,
				strings.Join(o.rechecked, " "))
		}
		if len(o.diff) > 0 {
			t.Errorf("%s, %s %s/%d: %d cells differ:\n  %s\ngot:\n%s\nwant:\n%s\npolicies:\n%s", stepName, o.fam, o.e.proto, o.e.port,
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
	c.ips = predictedAddrs(topo.nodes, topo.family)
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
					if c.ips.v4[k] != predicted.v4[k] || c.ips.v6[k] != predicted.v6[k] {
						t.Fatalf("pod %s got IPs %s %s, but its policies were written for %s %s (host-local allocation order changed?)",
							k, c.ips.v4[k], c.ips.v6[k], predicted.v4[k], predicted.v6[k])
					}
				}
			}
		}
		c.verify(t, stepName(i, s), s)
	}
}

// TestCasesWellFormed checks the case table itself: names, grids and
// policies (rendered for every family). It needs no root.
func TestCasesWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.slug] || tc.slug == "" || tc.upstream == "" {
			t.Errorf("case %q: empty or duplicate name", tc.slug)
		}
		seen[tc.slug] = true
		for _, fam := range []node.Family{node.IPv4, node.IPv6, node.DualStack} {
			checkCase(t, tc, fam)
		}
	}
}

// checkCase checks the steps of one case, its policies rendered for fam.
func checkCase(t *testing.T, tc tcase, fam node.Family) {
	{
		c := &cluster{topo: topology{family: fam}, ips: predictedAddrs(3, fam)}
		c.reset()
		if len(tc.steps) == 0 {
			t.Errorf("case %s: no steps", tc.slug)
		}
		for i, s := range tc.steps {
			if err := c.change(s); err != nil {
				t.Errorf("case %s %s (%s): %v", tc.slug, stepName(i, s), fam, err)
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

// TestConformance runs every case in both orders in every selected mode
// (family_test.go: $NETPOL_CONFORMANCE_FAMILY and $NETPOL_CONFORMANCE_NODES,
// or the default set) and prints one line per case and mode.
func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	topos, err := selectedTopologies()
	if err != nil {
		count(0, 0)
		t.Fatal(err)
	}
	for _, topo := range topos {
		t.Run(topo.name, func(t *testing.T) { runTopology(t, topo) })
	}
}

func runTopology(t *testing.T, topo topology) {
	start := time.Now()
	var spent = map[string]time.Duration{}
	passed, ran := 0, len(cases) // cases not run for a failed setup count as failed
	defer func() {
		count(passed, ran-passed)
		fmt.Printf("%s: %d of %d cases passed, both orders, in %v (setup %v, pods-first %v, policies-first %v)\n",
			topo.name, passed, ran, time.Since(start).Round(time.Second), spent["setup"].Round(time.Second),
			spent[podsFirst].Round(time.Second), spent[policiesFirst].Round(time.Second))
	}()

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

	ran = 0
	for i := range cases {
		tc := &cases[i]
		caseStart := time.Now()
		started := false
		ok := t.Run(tc.slug, func(t *testing.T) {
			started = true
			t.Logf("upstream: %q", tc.upstream)
			// The two orders share nothing (pods-first runs on the shared
			// cluster, policies-first on its own), so they run at once:
			// one's probe timeouts and agent runs overlap the other's.
			var wg sync.WaitGroup
			var mu sync.Mutex
			for order, run := range map[string]func(*testing.T){
				podsFirst:     func(t *testing.T) { runPodsFirst(t, shared, tc) },
				policiesFirst: func(t *testing.T) { runPoliciesFirst(t, topo, tc) },
			} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t.Run(order, func(t *testing.T) {
						s := time.Now()
						defer func() { mu.Lock(); spent[order] += time.Since(s); mu.Unlock() }()
						run(t)
					})
				}()
			}
			wg.Wait()
		})
		if !started { // filtered out by -run
			continue
		}
		ran++
		verdict := "FAIL"
		if ok {
			passed++
			verdict = "ok"
		}
		fmt.Printf("%-4s %s %s (%v)\n", verdict, topo.name, tc.slug, time.Since(caseStart).Round(time.Millisecond))
	}
}
