package conformance

// Address families: which modes run, how a policy template becomes the
// policy of a mode, and the pass/fail count that `make conformance` ends
// with.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/netpol/netpol/integration/node"
)

// Environment of `make conformance FAMILY=... NODES=...`: one mode only.
const (
	envFamily = "NETPOL_CONFORMANCE_FAMILY" // ipv4, ipv6 or dual
	envNodes  = "NETPOL_CONFORMANCE_NODES"  // 1 or 3
)

// allTopologies is every mode the suite knows: each family on one node and
// on three (bridge chain, and flannel chain: the flannel plugin reads
// FLANNEL_IPV6_SUBNET and gives host-local an IPv6 range, so it runs every
// family too).
var allTopologies = func() []topology {
	var out []topology
	for _, fam := range []node.Family{node.IPv4, node.IPv6, node.DualStack} {
		out = append(out,
			topology{name: "one-node-" + string(fam), nodes: 1, family: fam},
			topology{name: "three-nodes-bridge-" + string(fam), nodes: 3, family: fam},
			topology{name: "three-nodes-flannel-" + string(fam), nodes: 3, flannel: true, family: fam},
		)
	}
	return out
}()

// defaultTopologies is what `make test` (no environment) runs: all three
// families on one node, and dual-stack on three nodes with each chain.
var defaultTopologies = []string{
	"one-node-ipv4", "one-node-ipv6", "one-node-dual",
	"three-nodes-bridge-dual", "three-nodes-flannel-dual",
}

// selectedTopologies are the modes to run: those of $NETPOL_CONFORMANCE_FAMILY
// and $NETPOL_CONFORMANCE_NODES when either is set (the other then means
// any), else defaultTopologies.
func selectedTopologies() ([]topology, error) {
	famEnv, nodesEnv := os.Getenv(envFamily), os.Getenv(envNodes)
	var out []topology
	if famEnv == "" && nodesEnv == "" {
		for _, tp := range allTopologies {
			for _, name := range defaultTopologies {
				if tp.name == name {
					out = append(out, tp)
				}
			}
		}
		return out, nil
	}
	var fam node.Family
	if famEnv != "" {
		f, err := node.ParseFamily(famEnv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envFamily, err)
		}
		fam = f
	}
	nodes := 0
	if nodesEnv != "" {
		n, err := strconv.Atoi(nodesEnv)
		if err != nil || (n != 1 && n != 3) {
			return nil, fmt.Errorf("%s=%q: want 1 or 3", envNodes, nodesEnv)
		}
		nodes = n
	}
	for _, tp := range allTopologies {
		if (fam == "" || tp.family == fam) && (nodes == 0 || tp.nodes == nodes) {
			out = append(out, tp)
		}
	}
	return out, nil
}

// addrs are the pods' addresses per family, by pod key ("x/a").
type addrs struct {
	v4, v6 map[string]string
}

// of returns the addresses of family f (IPv4 or IPv6).
func (a addrs) of(f node.Family) map[string]string {
	if f == node.IPv6 {
		return a.v6
	}
	return a.v4
}

// predictedAddrs is where host-local puts the pods of a mode on fresh
// nodes when they are added one by one in podKeys order, placed
// round-robin: on one node 10.244.1.2, .3, ... (fd00:10:244:1::2, ::3, ...);
// on three, 10.244.1.2, 10.244.2.2, 10.244.3.2, 10.244.1.3, ...
func predictedAddrs(nodes int, fam node.Family) addrs {
	a := addrs{v4: map[string]string{}, v6: map[string]string{}}
	for i, k := range podKeys {
		if fam.Has4() {
			a.v4[k] = fmt.Sprintf("10.244.%d.%d", i%nodes+1, 2+i/nodes)
		}
		if fam.Has6() {
			a.v6[k] = node.PlacedIP6(i, nodes)
		}
	}
	return a
}

// render fills a policy template with the pods' addresses of a mode and
// returns it with its "namespace/name". On one family, {{ip}} is the pod's
// address, {{host}} its /32 (IPv4) or /128 (IPv6), as upstream writes them,
// and {{big}} the /4 (IPv4) or /16 (IPv6) around it: a block holding every
// pod of the cluster. Dual-stack: the template is rendered for each family
// and every ipBlock peer of the IPv6 rendering joins the same rule of the
// IPv4 one, so that each rule means for IPv6 traffic what it means for
// IPv4 (an IPv4 block never matches IPv6 traffic).
func render(tmpl string, a addrs, fam node.Family) (yamlText, key string, err error) {
	if fam != node.DualStack {
		text, p, err := renderOne(tmpl, a.of(fam), fam)
		if err != nil {
			return "", "", err
		}
		return text, p.Namespace + "/" + p.Name, nil
	}
	text4, p4, err := renderOne(tmpl, a.v4, node.IPv4)
	if err != nil || !strings.Contains(tmpl, "{{") {
		return text4, p4.Namespace + "/" + p4.Name, err
	}
	_, p6, err := renderOne(tmpl, a.v6, node.IPv6)
	if err != nil {
		return "", "", err
	}
	for i := range p4.Spec.Ingress {
		for _, peer := range p6.Spec.Ingress[i].From {
			if peer.IPBlock != nil {
				p4.Spec.Ingress[i].From = append(p4.Spec.Ingress[i].From, peer)
			}
		}
	}
	for i := range p4.Spec.Egress {
		for _, peer := range p6.Spec.Egress[i].To {
			if peer.IPBlock != nil {
				p4.Spec.Egress[i].To = append(p4.Spec.Egress[i].To, peer)
			}
		}
	}
	out, err := yaml.Marshal(p4)
	if err != nil {
		return "", "", err
	}
	return string(out), p4.Namespace + "/" + p4.Name, nil
}

// renderOne renders a template for one family and decodes it as the agent
// does (YAML 1.1 to JSON with no target type, so an unquoted y is a
// boolean), then into the API type, strictly.
func renderOne(tmpl string, ips map[string]string, fam node.Family) (string, *networkingv1.NetworkPolicy, error) {
	bits, bigBits := 32, 4
	if fam == node.IPv6 {
		bits, bigBits = 128, 16
	}
	lookup := func(pod string) (net.IP, error) {
		ip := net.ParseIP(ips[pod])
		if ip == nil || (ip.To4() != nil) != (fam == node.IPv4) {
			return nil, fmt.Errorf("no %s address for pod %q", fam, pod)
		}
		if fam == node.IPv4 {
			ip = ip.To4()
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
			return fmt.Sprintf("%s/%d", ip, bits), err
		},
		// big is a block around the pod holding the whole cluster: "many
		// many other IPs around the pod", as upstream's except cases want.
		"big": func(pod string) (string, error) {
			ip, err := lookup(pod)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s/%d", ip.Mask(net.CIDRMask(bigBits, bits)), bigBits), nil
		},
	}
	t, err := template.New("policy").Option("missingkey=error").Funcs(funcs).Parse(tmpl)
	if err != nil {
		return "", nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		return "", nil, err
	}
	p := &networkingv1.NetworkPolicy{}
	j, err := yaml.YAMLToJSONStrict(b.Bytes())
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		err = dec.Decode(p)
	}
	if err != nil {
		return "", nil, fmt.Errorf("policy does not parse: %w\n%s", err, b.String())
	}
	if p.Namespace == "" || p.Name == "" {
		return "", nil, fmt.Errorf("policy lacks a namespace or name:\n%s", b.String())
	}
	return b.String(), p, nil
}

// summary counts cases per mode: a case passes when both orders passed.
var summary struct {
	mu             sync.Mutex
	ran            bool
	passed, failed int
}

// count records the outcome of cases of one mode.
func count(passed, failed int) {
	summary.mu.Lock()
	defer summary.mu.Unlock()
	summary.ran = true
	summary.passed += passed
	summary.failed += failed
}

// TestMain ends the output with "N passed, M failed" (cases, over every
// mode run) when TestConformance ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if summary.ran {
		fmt.Printf("%d passed, %d failed\n", summary.passed, summary.failed)
	}
	os.Exit(code)
}
