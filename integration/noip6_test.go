package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netpol/netpol/integration/node"
)

// pathWithout returns a PATH of one directory holding a symlink to every
// program of the current PATH except those whose name starts with prefix.
func pathWithout(t *testing.T, prefix string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, prefix) {
				continue
			}
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				continue // an earlier PATH entry wins
			}
			if err := os.Symlink(filepath.Join(d, name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// TestAgentWithoutIP6Tables: on a node without ip6tables whose pods are
// IPv4 only, `netpol-agent --once` enforces the IPv4 policy, warns that
// IPv6 is not enforced, and exits 0 (instead of failing every sync).
func TestAgentWithoutIP6Tables(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "",
	}))
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	t.Setenv("PATH", pathWithout(t, "ip6tables"))
	out, err := n.RunAgent("--once", "--manifests", dir, "--node-name", n.Name)
	if err != nil {
		t.Fatalf("agent --once without ip6tables: %v\n%s", err, out)
	}
	if s := string(out); strings.Count(s, "level=WARN") != 1 || !strings.Contains(s, "enforcing IPv4 only") {
		t.Errorf("want one warning that only IPv4 is enforced:\n%s", s)
	}
	expectMatrix(t, "IPv4 policy without ip6tables", pods, pods,
		"default/web>default/db", "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web")
}
