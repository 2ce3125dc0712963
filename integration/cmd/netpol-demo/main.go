// Command netpol-demo shows netpol on a demo node made of network
// namespaces: pods created through the real bridge -> host-local -> netpol
// chain, an "outside" network routed through the node, the seed article's
// NetworkPolicy applied by the agent, and the reachability matrices before and
// after. Everything it creates is removed when it ends. Run it as root with
// `make demo` (which builds the binaries and fetches the CNI plugins first).
package main

import (
	"context"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/netpol/netpol/integration/node"
)

//go:embed manifests/*.yaml
var manifests embed.FS

func main() { os.Exit(run()) }

func run() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "netpol-demo: run as root (it creates network namespaces)")
		return 1
	}
	if err := demo(); err != nil {
		fmt.Fprintln(os.Stderr, "netpol-demo:", err)
		return 1
	}
	return 0
}

type demoState struct {
	n    *node.Node
	dir  string
	pods []*node.Pod
	out  *node.Outside
}

func demo() error {
	n, err := node.Create(node.Options{})
	if err != nil {
		return err
	}
	defer n.Close()
	dir, err := os.MkdirTemp("", "netpol-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s := &demoState{n: n, dir: dir}
	fmt.Printf("Demo node %s: bridge %s, pod subnet %s, data dir %s\n\n", n.NetNS, n.Bridge, n.Subnet, n.DataDir)
	if err := s.setUp(); err != nil {
		return err
	}
	s.matrices("Before any NetworkPolicy: every pod reaches every pod")
	policy, _ := manifests.ReadFile("manifests/10-policy.yaml")
	fmt.Printf("Applying the seed NetworkPolicy:\n\n%s\n", indent(string(policy)))
	if err := os.WriteFile(filepath.Join(dir, "10-policy.yaml"), policy, 0o644); err != nil {
		return err
	}
	if err := s.sync("--audit"); err != nil {
		return err
	}
	s.matrices("The policy in audit first (netpol-agent --audit, or the namespace annotated netpol.io/audit: \"true\"):\n" +
		"evaluated as enforcement would, but what it would deny passes (logged as would-deny)")
	if err := s.sync(); err != nil {
		return err
	}
	agent, err := s.startDropLog()
	if err != nil {
		return err
	}
	s.matrices("Enforced: db accepts TCP 6379 only from frontend pods in default, pods of project=myproject\n" +
		"namespaces and 172.17.0.0/16 except 172.17.1.0/24; it may only open TCP 5978 to 10.0.0.0/24")
	if err := s.drops(); err != nil {
		return err
	}
	if err := agent.Stop(); err != nil {
		return fmt.Errorf("stop netpol-agent: %w", err)
	}
	s.kernel()
	fmt.Println("Tearing down: CNI DEL of every pod, netpol-agent --uninstall, namespaces removed.")
	for _, p := range s.pods {
		if err := n.DelPod(p); err != nil {
			return err
		}
	}
	if out, err := n.RunAgent("--uninstall"); err != nil {
		return fmt.Errorf("uninstall: %v\n%s", err, out)
	}
	return nil
}

// setUp creates the pods through CNI, the outside network, and syncs the
// agent with the pods known and no policy.
func (s *demoState) setUp() error {
	world, _ := manifests.ReadFile("manifests/00-world.yaml")
	if err := os.WriteFile(filepath.Join(s.dir, "00-world.yaml"), world, 0o644); err != nil {
		return err
	}
	for _, pn := range [][2]string{{"default", "db"}, {"default", "frontend"}, {"default", "backend"}, {"myproject", "p"}, {"other", "q"}} {
		p, err := s.n.AddPod(pn[0], pn[1])
		if err != nil {
			return fmt.Errorf("CNI ADD %s/%s: %w", pn[0], pn[1], err)
		}
		if err := p.Serve(6379); err != nil {
			return err
		}
		fmt.Printf("  pod %-18s %s  (CNI ADD through bridge -> netpol)\n", p.Label(), p.IP)
		s.pods = append(s.pods, p)
	}
	out, err := s.n.AddOutside("outside", []string{"172.17.0.5/16", "172.17.1.5/16", "10.0.0.5/24", "10.0.1.5/24"})
	if err != nil {
		return err
	}
	if err := out.Serve(5978); err != nil {
		return err
	}
	s.out = out
	fmt.Printf("  outside network routed through the node: %s\n\n", strings.Join(out.Addrs, ", "))
	return s.sync()
}

func (s *demoState) sync(extra ...string) error {
	out, err := s.n.RunAgent(append([]string{"--manifests", s.dir, "--once"}, extra...)...)
	if err != nil {
		return fmt.Errorf("netpol-agent --once: %v\n%s", err, out)
	}
	return nil
}

func (s *demoState) matrices(title string) {
	fmt.Printf("== %s\n\n", title)
	from := make([]node.Host, 0, len(s.pods)+2)
	for _, p := range s.pods {
		from = append(from, p)
	}
	from = append(from, s.out.At("172.17.0.5"), s.out.At("172.17.1.5"))
	fmt.Printf("TCP connections to port 6379 (rows connect to columns; . allowed, X denied):\n\n%s\n",
		indent(node.Matrix(from, s.pods, "tcp", 6379).String()))
	dst := []node.Host{s.out.At("10.0.0.5"), s.out.At("10.0.1.5")}
	fmt.Printf("TCP connections to port 5978 outside the cluster:\n\n%s\n",
		indent(node.Matrix(s.pods[:2], dst, "tcp", 5978).String()))
}

// kernel shows what netpol installed: our chains and sets, nothing else.
func (s *demoState) kernel() {
	save, _ := s.n.IPTablesSave(context.Background())
	var ours []string
	for _, l := range strings.Split(save, "\n") {
		if strings.Contains(l, "NETPOL") && strings.HasPrefix(l, "-A") {
			ours = append(ours, l)
		}
	}
	fmt.Printf("What the kernel holds (iptables-save, our rules only):\n\n%s\n", indent(strings.Join(ours, "\n")))
	sets, _ := s.n.Exec(context.Background(), "ipset", "list", "-t")
	fmt.Printf("Sets (ipset list -t):\n\n%s\n", indent(summarizeSets(string(sets))))
}

func summarizeSets(list string) string {
	var out []string
	name := ""
	for _, l := range strings.Split(list, "\n") {
		if v, ok := strings.CutPrefix(l, "Name: "); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(l, "Number of entries: "); ok && strings.HasPrefix(name, "NETPOL4") {
			out = append(out, fmt.Sprintf("%-30s %s entries", name, v))
		}
	}
	return strings.Join(out, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
