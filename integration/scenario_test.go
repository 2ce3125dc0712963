package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// denyTimeout is how long a probe waits before calling a cell denied. Denied
// packets are dropped, so every denied cell costs this (twice: one retry).
const denyTimeout = 500 * time.Millisecond

// world describes the namespaces and pods of a scenario.
type world struct {
	namespaces map[string]map[string]string // name -> labels
	pods       []podSpec
}

type podSpec struct {
	ns, name string
	labels   map[string]string
}

// cluster is a node with pods created through the real CNI chain and a
// manifest directory the agent reads.
type cluster struct {
	t     *testing.T
	node  *node.Node
	dir   string
	world world
	pods  map[string]*node.Pod // "ns/name"
}

// newCluster creates the node and writes the world's manifests. Pods are
// created by addPods, so a test chooses the order of pods and policies.
func newCluster(t *testing.T, w world) *cluster {
	t.Helper()
	c := &cluster{t: t, node: node.New(t, node.Options{}), dir: t.TempDir(), world: w, pods: map[string]*node.Pod{}}
	c.write("00-world.yaml", w.manifests())
	return c
}

func (w world) manifests() string {
	var b strings.Builder
	names := make([]string, 0, len(w.namespaces))
	for n := range w.namespaces {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: %s\n", n, yamlMap(w.namespaces[n]))
	}
	for _, p := range w.pods {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n  labels: %s\n"+
			"spec:\n  containers:\n  - name: c\n    image: none\n", p.name, p.ns, yamlMap(p.labels))
	}
	return b.String()
}

func yamlMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q: %q", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (c *cluster) write(name, content string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// addPods creates every pod of the world through CNI ADD, serving TCP and
// UDP on ports.
func (c *cluster) addPods(ports ...int) {
	c.t.Helper()
	for _, ps := range c.world.pods {
		p, err := c.node.AddPod(ps.ns, ps.name)
		if err != nil {
			c.t.Fatalf("ADD %s/%s: %v", ps.ns, ps.name, err)
		}
		if err := p.Serve(ports...); err != nil {
			c.t.Fatalf("serve in %s/%s: %v", ps.ns, ps.name, err)
		}
		c.pods[ps.ns+"/"+ps.name] = p
	}
}

// policies replaces the policy manifest and runs one agent sync.
func (c *cluster) policies(yaml string) {
	c.t.Helper()
	c.write("10-policies.yaml", yaml)
	c.sync()
}

func (c *cluster) sync() {
	c.t.Helper()
	if out, err := c.node.RunAgent("--manifests", c.dir, "--once"); err != nil {
		c.t.Fatalf("agent --once: %v\n%s", err, out)
	}
}

// podList returns the named pods ("ns/name") in order.
func (c *cluster) podList(keys ...string) []*node.Pod {
	c.t.Helper()
	out := make([]*node.Pod, len(keys))
	for i, k := range keys {
		if out[i] = c.pods[k]; out[i] == nil {
			c.t.Fatalf("no pod %s", k)
		}
	}
	return out
}

// grid builds an expected truth table from rows of '.' (allowed) and 'X'
// (denied), one character per column.
func grid(t *testing.T, from, to []string, rows ...string) *node.Table {
	t.Helper()
	if len(rows) != len(from) {
		t.Fatalf("grid: %d rows for %d sources", len(rows), len(from))
	}
	tab := node.NewTable(from, to, false)
	for i, r := range rows {
		r = strings.ReplaceAll(r, " ", "")
		if len(r) != len(to) {
			t.Fatalf("grid row %q: want %d cells", r, len(to))
		}
		for j, ch := range r {
			tab.Set(from[i], to[j], ch == '.')
		}
	}
	return tab
}

// expect probes every pair and fails with both tables when any cell differs.
func expect[F, T node.Host](t *testing.T, what string, from []F, to []T, proto string, port int, rows ...string) {
	t.Helper()
	want := grid(t, node.Labels(from), node.Labels(to), rows...)
	got := node.MatrixTimeout(from, to, proto, port, denyTimeout)
	if diff := got.Diff(want); len(diff) > 0 {
		t.Errorf("%s, %s/%d: %d cells differ: %s\ngot:\n%s\nwant:\n%s", what, proto, port, len(diff),
			strings.Join(diff, "; "), got, want)
	}
}
