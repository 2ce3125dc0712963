package integration

// Helpers of lifecycle_test.go and agent_test.go, named for what they do:
// build a node and its pods, write manifests, sync, read back the kernel
// (iptables-save, ipset list) and the data directory, probe traffic.

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// servePort is the port every pod of these tests serves (TCP and UDP echo).
const servePort = 8080

// newNode returns a node with netpol in the chain; it skips without root.
func newNode(t *testing.T, opts node.Options) *node.Node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	return node.New(t, opts)
}

// timeoutCtx returns a context bounded by d, cancelled at the end of the test.
func timeoutCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// addServingPods adds pods named "namespace/name" and makes each serve servePort.
func addServingPods(t *testing.T, n *node.Node, keys ...string) []*node.Pod {
	t.Helper()
	var pods []*node.Pod
	for _, k := range keys {
		ns, name, ok := strings.Cut(k, "/")
		if !ok {
			t.Fatalf("pod key %q is not namespace/name", k)
		}
		p, err := n.AddPod(ns, name)
		if err != nil {
			t.Fatalf("AddPod %s: %v", k, err)
		}
		if err := p.Serve(servePort); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	return pods
}

// podYAML is one Pod manifest of this node (no IPs: CNI ADD records them).
// labels is "k=v,k2=v2" or "".
func podYAML(key, labels string) string {
	ns, name, _ := strings.Cut(key, "/")
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n", name, ns)
	if labels != "" {
		b.WriteString("  labels:\n")
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&b, "    %s: %q\n", k, v)
		}
	}
	b.WriteString("spec:\n  containers:\n  - name: c\n    image: busybox\n")
	return b.String()
}

// namespaceYAML is one Namespace manifest.
func namespaceYAML(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", name)
}

// yamlDocs joins manifests into one multi-document YAML file.
func yamlDocs(docs ...string) string { return strings.Join(docs, "---\n") }

// podsYAML renders pods given as "ns/name" -> labels, plus their
// namespaces, in a stable order.
func podsYAML(pods map[string]string) string {
	keys := make([]string, 0, len(pods))
	nss := map[string]bool{}
	for k := range pods {
		keys = append(keys, k)
		ns, _, _ := strings.Cut(k, "/")
		nss[ns] = true
	}
	sort.Strings(keys)
	var docs []string
	for _, ns := range slices.Sorted(maps.Keys(nss)) {
		docs = append(docs, namespaceYAML(ns))
	}
	for _, k := range keys {
		docs = append(docs, podYAML(k, pods[k]))
	}
	return yamlDocs(docs...)
}

// dbPolicyYAML selects app=db pods in namespace ns and allows ingress to them
// only from app=web pods of ns, on TCP servePort.
func dbPolicyYAML(ns string) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db-from-web
  namespace: %s
spec:
  podSelector:
    matchLabels:
      app: db
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: web
    ports:
    - protocol: TCP
      port: %d
`, ns, servePort)
}

// writeManifest writes a file, atomically (temp + rename), so that a polling agent
// never reads half of it.
func writeManifest(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// syncOnce runs `netpol-agent --once` on dir and fails the test if it fails.
func syncOnce(t *testing.T, n *node.Node, dir string) {
	t.Helper()
	out, err := n.RunAgent("--once", "--manifests", dir, "--node-name", n.Name)
	if err != nil {
		t.Fatalf("agent --once: %v\n%s", err, out)
	}
}

// execIn runs a command in the node namespace and fails the test on error.
func execIn(t *testing.T, n *node.Node, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := n.Exec(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s: %s %v: %v", n.Name, name, args, err)
	}
	return string(out)
}

// iptablesSave returns iptables-save of the node.
func iptablesSave(t *testing.T, n *node.Node) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := n.IPTablesSave(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var counterColumns = regexp.MustCompile(`\[\d+:\d+\]`)

// enforcedRules returns iptables-save of the node without comment lines and
// counters: what the kernel enforces, comparable across time.
func enforcedRules(t *testing.T, n *node.Node) string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(iptablesSave(t, n), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, counterColumns.ReplaceAllString(l, "[0:0]"))
	}
	return strings.Join(out, "\n")
}

// chainRules returns the -A lines of one chain in iptables-save.
func chainRules(save, chain string) []string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "-A "+chain+" ") {
			out = append(out, l)
		}
	}
	return out
}

// nodeSets parses `ipset list` of the node: set name -> members (sorted).
func nodeSets(t *testing.T, n *node.Node) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := n.IPSetList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return parseIPSetList(out)
}

func parseIPSetList(out string) map[string][]string {
	sets := map[string][]string{}
	var name string
	inMembers := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "Name: "):
			name = strings.TrimPrefix(l, "Name: ")
			sets[name] = []string{}
			inMembers = false
		case l == "Members:":
			inMembers = true
		case strings.TrimSpace(l) == "":
			inMembers = false
		case inMembers:
			sets[name] = append(sets[name], strings.TrimSpace(l))
		}
	}
	for k := range sets {
		sort.Strings(sets[k])
	}
	return sets
}

// setsHolding returns, sorted, the names of our (NETPOL*) sets that have
// entry as a member; count is how often the entry appears in total. The
// agent's temporary sets (NETPOL-TMP-*, alive only inside one ipset restore
// while a set is refilled and swapped, and referenced by no rule) are not
// counted: a reader may catch one mid-sync.
func setsHolding(sets map[string][]string, entry string) (names []string, count int) {
	for name, members := range sets {
		if !strings.HasPrefix(name, "NETPOL") || strings.HasPrefix(name, "NETPOL-TMP-") {
			continue
		}
		c := 0
		for _, m := range members {
			if m == entry {
				c++
			}
		}
		if c > 0 {
			names = append(names, name)
			count += c
		}
	}
	sort.Strings(names)
	return names, count
}

// setKinds maps set names to their kind prefix, e.g. NETPOL4-GI-XXXX ->
// NETPOL4-GI-, NETPOL4-DENY -> NETPOL4-DENY.
func setKinds(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if i := strings.LastIndex(n, "-"); i > 0 && n != "NETPOL4-DENY" && n != "NETPOL6-DENY" {
			out = append(out, n[:i+1])
		} else {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// withDispatch adds to set kinds the dispatch sets that come with a group
// set: a pod of an ingress (egress) group is also in the direction's
// isolated set, NETPOL4-ISO-I (-E), which setKinds calls NETPOL4-ISO-.
// (The worlds of these tests have at most two groups a direction, so no
// pod is in a bit set.)
func withDispatch(kinds []string) []string {
	out := slices.Clone(kinds)
	for _, k := range kinds {
		if strings.HasSuffix(k, "-GI-") || strings.HasSuffix(k, "-GE-") {
			out = append(out, k[:len("NETPOL4-")]+"ISO-")
		}
	}
	return sortedCopy(out)
}

// wantSets checks the NETPOL sets holding ip: their kind prefixes must be
// exactly want (e.g. ["NETPOL4-GI-"]) and the dispatch sets that come with
// them (withDispatch), each holding ip once. It returns the names of all
// those sets, sorted: a group set sorts before the isolated sets.
func wantSets(t *testing.T, sets map[string][]string, who, ip string, want ...string) []string {
	t.Helper()
	names, count := setsHolding(sets, ip)
	if got := setKinds(names); !slices.Equal(got, withDispatch(want)) {
		t.Errorf("%s (%s) is in sets %v, want one set each of %v", who, ip, names, withDispatch(want))
	}
	if count != len(names) {
		t.Errorf("%s (%s) appears %d times in %d sets", who, ip, count, len(names))
	}
	return names
}

func sortedCopy(in []string) []string {
	out := slices.Clone(in)
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// indexView is the node's index, as the plugin reads it.
type indexView struct{ policy.Index }

// readIndex reads the node's index through the store the plugin uses.
func readIndex(t *testing.T, n *node.Node) *indexView {
	t.Helper()
	idx, err := state.New(n.DataDir).ReadIndex()
	if err != nil {
		t.Fatalf("index: %v", err)
	}
	return &indexView{*idx}
}

// setsOf returns, sorted, the IPv4 hash:ip sets the index puts pod in.
func (idx *indexView) setsOf(pod string) []string {
	var out []string
	for _, m := range idx.Pods[pod] {
		if m.Family == ipt.IPv4 && m.Suffix == "" {
			out = append(out, m.Set)
		}
	}
	return sortedCopy(out)
}

// podRecords lists the files under the node's dataDir/pods.
func podRecords(t *testing.T, n *node.Node) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.DataDir, "pods"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// recordFileName is the record file of a pod's eth0.
func recordFileName(p *node.Pod) string { return p.ContainerID + "@eth0.json" }

// readFileIfAny returns a file's bytes ("" with ok false when missing).
func readFileIfAny(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b
}

// expectMatrix probes from every host of from to every host of to on TCP servePort
// and compares with want, given as allowed cells "from>to"; every other
// cell is denied. A pod to itself is never checked (it never crosses the
// bridge). timeout is the per-attempt probe timeout.
func expectMatrix[F, T node.Host](t *testing.T, what string, from []F, to []T, allowed ...string) {
	t.Helper()
	got := node.MatrixTimeout(from, to, "tcp", servePort, denyTimeout)
	want := node.NewTable(node.Labels(from), node.Labels(to), false)
	for _, c := range allowed {
		f, d, ok := strings.Cut(c, ">")
		if !ok {
			t.Fatalf("bad cell %q", c)
		}
		want.Set(f, d, true)
	}
	for _, f := range from {
		for _, d := range to {
			if f.Label() == d.Label() {
				want.Set(f.Label(), d.Label(), got.Allowed[slices.Index(got.From, f.Label())][slices.Index(got.To, d.Label())])
			}
		}
	}
	if d := got.Diff(want); len(d) > 0 {
		t.Errorf("%s: traffic differs from expected:\n%s\ngot:\n%s", what, strings.Join(d, "\n"), got)
	}
}

// allPairs returns every "a>b" cell of labels with a != b.
func allPairs(labels ...string) []string {
	var out []string
	for _, a := range labels {
		for _, b := range labels {
			if a != b {
				out = append(out, a+">"+b)
			}
		}
	}
	return out
}

// waitFor polls cond every interval until it holds or limit passes; it
// returns how long it took and whether it held. The loop is bounded both in
// time and in iterations.
func waitFor(limit, interval time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	maxIter := int(limit/interval) + 2
	for i := 0; i < maxIter; i++ {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > limit {
			break
		}
		time.Sleep(interval)
	}
	return time.Since(start), false
}

// runAgentSplit runs netpol-agent in the node namespace like
// node.RunAgent, but returns stdout and stderr apart, and the exit code.
func runAgentSplit(t *testing.T, n *node.Node, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"netns", "exec", n.NetNS, n.AgentPath(), "--data-dir", n.DataDir}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Env = append(os.Environ(), "NODE_NAME="+n.Name)
	cmd.WaitDelay = time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("netpol-agent %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
}
