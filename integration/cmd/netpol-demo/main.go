// Command netpol-demo shows netpol on a dual-stack demo node made of
// network namespaces: pods created through the real bridge -> host-local
// (an IPv4 and an IPv6 range) -> netpol chain, each with one address of
// each family, an "outside" network routed through the node, the seed
// article's NetworkPolicy applied by the agent, and the reachability
// matrices of both families before and after. Everything it creates is removed when it ends. Run it as root with
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
	n, err := node.Create(node.Options{Family: node.DualStack})
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
	fmt.Printf("Demo node %s: bridge %s, pod subnets %s and %s (dual-stack), data dir %s\n\n",
		n.NetNS, n.Bridge, n.Subnet, n.Subnet6, n.DataDir)
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
	if err := s.status(); err != nil {
		return err
	}
	agent, err := s.startDropLog()
	if err != nil {
		return err
	}
	s.matrices("Enforced: db accepts TCP 6379 only from frontend pods in default, pods of project=myproject\n" +
		"namespaces and 172.17.0.0/16 except 172.17.1.0/24; it may only open TCP 5978 to 10.0.0.0/24.\n" +
		"Its ipBlocks are IPv4: over IPv6 only the pod and namespace selectors admit, and db may open nothing")
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
		fmt.Printf("  pod %-18s %-12s %-22s (CNI ADD through bridge -> netpol)\n", p.Label(), p.IP, p.IP6)
		s.pods = append(s.pods, p)
	}
	out, err := s.n.AddOutside("outside", []string{"172.17.0.5/16", "172.17.1.5/16", "10.0.0.5/24", "10.0.1.5/24",
		"2001:db8:17::5/64", "2001:db8:10::5/64"})
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

// outsideAddrs are the outside hosts' addresses per family: sources of
// ingress (inside and outside the ipBlock's except), and egress
// destinations (inside and outside its egress block).
var outsideAddrs = map[node.Family]struct{ from, to []string }{
	node.IPv4: {from: []string{"172.17.0.5", "172.17.1.5"}, to: []string{"10.0.0.5", "10.0.1.5"}},
	node.IPv6: {from: []string{"2001:db8:17::5"}, to: []string{"2001:db8:10::5"}},
}

// matrices probes, over each family, every pod and outside source to every
// pod on 6379, and db and frontend to the outside on 5978.
func (s *demoState) matrices(title string) {
	fmt.Printf("== %s\n\n", title)
	for _, fam := range []node.Family{node.IPv4, node.IPv6} {
		from := make([]node.Host, 0, len(s.pods)+2)
		for _, p := range s.pods {
			from = append(from, p)
		}
		for _, a := range outsideAddrs[fam].from {
			from = append(from, s.out.At(a))
		}
		fmt.Printf("%s: TCP connections to port 6379 (rows connect to columns' %s addresses; . allowed, X denied):\n\n%s\n",
			fam, fam, indent(node.Matrix(from, node.In(s.pods, fam), "tcp", 6379).String()))
		var dst []node.Host
		for _, a := range outsideAddrs[fam].to {
			dst = append(dst, s.out.At(a))
		}
		fmt.Printf("%s: TCP connections to port 5978 outside the cluster:\n\n%s\n",
			fam, indent(node.Matrix(s.pods[:2], dst, "tcp", 5978).String()))
	}
}

// kernel shows what netpol installed: our chains and sets, nothing else.
func (s *demoState) kernel() {
	save, _ := s.n.IPTablesSave(context.Background())
	ours := ourRules(save)
	fmt.Printf("What the kernel holds (iptables-save, our rules only):\n\n%s\n", indent(strings.Join(ours, "\n")))
	save6, _ := s.n.IP6TablesSave(context.Background())
	more, less := ruleDiff(ours, ourRules(save6))
	fmt.Printf("ip6tables-save holds the same rules over the NETPOL6-* sets (and an 18-instruction same-address\n"+
		"program), without the rules of the IPv4 ipBlocks:\n\n%s\n\nand with:\n\n%s\n",
		indent(strings.Join(less, "\n")), indent(strings.Join(more, "\n")))
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
		if v, ok := strings.CutPrefix(l, "Number of entries: "); ok && (strings.HasPrefix(name, "NETPOL4") || strings.HasPrefix(name, "NETPOL6")) {
			out = append(out, fmt.Sprintf("%-30s %s entries", name, v))
		}
	}
	return strings.Join(out, "\n")
}

// ruleDiff returns the IPv6 rules that have no IPv4 twin (set names
// compared as NETPOL4-) and the IPv4 rules that have no IPv6 twin, leaving
// out the same-address programs, which differ by family.
func ruleDiff(v4, v6 []string) (more, less []string) {
	in := func(rules []string, l string) bool {
		for _, r := range rules {
			if strings.ReplaceAll(r, "NETPOL6-", "NETPOL4-") == l {
				return true
			}
		}
		return false
	}
	for _, l := range v6 {
		if !strings.Contains(l, "--bytecode") && !in(v4, strings.ReplaceAll(l, "NETPOL6-", "NETPOL4-")) {
			more = append(more, l)
		}
	}
	for _, l := range v4 {
		if !strings.Contains(l, "--bytecode") && !in(v6, l) {
			less = append(less, l)
		}
	}
	return more, less
}

// ourRules are the -A lines of a save that mention our chains.
func ourRules(save string) []string {
	var ours []string
	for _, l := range strings.Split(save, "\n") {
		if strings.Contains(l, "NETPOL") && strings.HasPrefix(l, "-A") {
			ours = append(ours, l)
		}
	}
	return ours
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// status prints which version of each NetworkPolicy is in force on the
// node and when the kernel committed it (`netpol-agent status`).
func (s *demoState) status() error {
	out, err := s.n.RunAgent("status")
	if err != nil {
		return fmt.Errorf("netpol-agent status: %v\n%s", err, out)
	}
	fmt.Printf("In force on the node, and when it was realized (netpol-agent status --data-dir %s):\n\n%s\n\n",
		s.n.DataDir, indent(strings.TrimSpace(string(out))))
	return nil
}
