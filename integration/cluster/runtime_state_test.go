package cluster_test

// What a node holds for the pods containerd ran: netpol's pod records,
// ipset members, host-local addresses, veths and the runtime's netns pins;
// and the manifests the agent reads.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/cluster/runtime"
)

// writeFile writes a file atomically (temp + rename).
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// podsManifest is a Namespace and one Pod per name -> app label.
func podsManifest(ns string, apps map[string]string) string {
	docs := []string{fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)}
	names := make([]string, 0, len(apps))
	for n := range apps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n"+
			"  labels:\n    app: %s\nspec:\n  containers:\n  - name: c\n    image: busybox\n", n, ns, apps[n]))
	}
	return strings.Join(docs, "---\n")
}

// dbFromWebPolicy admits only app=web to app=db on TCP 8080.
func dbFromWebPolicy(ns string) string {
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
      port: 8080
`, ns)
}

// syncAgent runs netpol-agent --once on the manifests in dir.
func (e *runtimeEnv) syncAgent(t *testing.T, dir string) {
	t.Helper()
	out, err := e.node.RunAgent("--once", "--manifests", dir, "--node-name", e.node.Name)
	if err != nil {
		t.Fatalf("netpol-agent --once: %v\n%s", err, out)
	}
}

// dump is the node's iptables and sets, for failure messages.
func (e *runtimeEnv) dump(t *testing.T) string {
	t.Helper()
	return e.node.Dump()
}

// nodeState is what the node holds for pods.
type nodeState struct {
	records []string        // netpol pod records (<sandbox id>@<ifname>.json)
	members map[string]bool // pod-subnet IPs that are members of some ipset
	ipam    []string        // addresses host-local has handed out
	veths   []string        // veth links in the node namespace
	netns   []string        // the runtime's pins of pod network namespaces
}

func (e *runtimeEnv) state(t *testing.T) nodeState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var s nodeState
	s.records = dirNames(t, filepath.Join(e.node.DataDir, "pods"))
	sets, err := e.node.IPSetList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, subnet, err := net.ParseCIDR(e.node.Subnet)
	if err != nil {
		t.Fatal(err)
	}
	s.members = setMembers(sets, subnet)
	_ = filepath.WalkDir(e.node.IPAMDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && net.ParseIP(d.Name()) != nil {
			s.ipam = append(s.ipam, d.Name())
		}
		return nil
	})
	out, err := e.node.Exec(ctx, "ip", "-o", "link", "show", "type", "veth")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s.veths = append(s.veths, strings.TrimSuffix(f[1], ":"))
		}
	}
	for _, n := range dirNames(t, e.rt.HostPath("/run/netns")) {
		if strings.HasPrefix(n, "cni-") {
			s.netns = append(s.netns, n)
		}
	}
	return s
}

// has reports whether everything of a running pod is there: its record,
// its address, and its address in some set.
func (s nodeState) has(p *runtime.Pod) bool {
	return slices.ContainsFunc(s.records, func(r string) bool { return strings.HasPrefix(r, p.ID+"@") }) &&
		slices.Contains(s.ipam, p.IP) && s.members[p.IP]
}

// any reports whether anything of the pod is left.
func (s nodeState) any(p *runtime.Pod) bool {
	return slices.ContainsFunc(s.records, func(r string) bool { return strings.HasPrefix(r, p.ID+"@") }) ||
		slices.Contains(s.ipam, p.IP) || s.members[p.IP]
}

func (s nodeState) empty() bool {
	return len(s.records)+len(s.members)+len(s.ipam)+len(s.veths)+len(s.netns) == 0
}

func (s nodeState) String() string {
	members := make([]string, 0, len(s.members))
	for ip := range s.members {
		members = append(members, ip)
	}
	sort.Strings(members)
	return fmt.Sprintf("records %v, set members %v, host-local IPs %v, veths %v, netns pins %v",
		s.records, members, s.ipam, s.veths, s.netns)
}

// setMembers returns the member addresses in subnet of every set in
// `ipset list` output (a member "10.244.1.2,tcp:8080" counts as
// 10.244.1.2; the sets' fixed CIDR members are not pods').
func setMembers(out string, subnet *net.IPNet) map[string]bool {
	m := map[string]bool{}
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "Members:"):
			in = true
		case strings.HasPrefix(l, "Name:") || strings.TrimSpace(l) == "":
			in = false
		case in:
			f := strings.Fields(l)
			if len(f) > 0 {
				ip, _, _ := strings.Cut(f[0], ",")
				if a := net.ParseIP(ip); a != nil && subnet.Contains(a) {
					m[ip] = true
				}
			}
		}
	}
	return m
}

// dirNames lists a directory (none when it does not exist).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
