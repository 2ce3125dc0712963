package node

import (
	"context"
	"net"

	"strings"
	"testing"
	"time"
)

// TestPodFamilies: a node of each family gives its pods exactly the
// addresses of that family through the real bridge -> host-local chain
// (one range, or two for dual-stack), and pods reach each other over every
// family they have, TCP and UDP, with probes that connect over the family
// asked for.
func TestPodFamilies(t *testing.T) {
	t.Parallel()
	for _, fam := range []Family{IPv4, IPv6, DualStack} {
		t.Run(string(fam), func(t *testing.T) {
			t.Parallel()
			n := bridgeNode(t, Options{Family: fam})
			pods := addPods(t, n, "a/x", "a/y", "b/z")
			for _, p := range pods {
				if (p.IP != "") != fam.Has4() || (p.IP6 != "") != fam.Has6() || len(p.IPs) != len(fam.Single()) {
					t.Errorf("%s pod %s has addresses %v (IPv4 %q, IPv6 %q)", fam, p.Label(), p.IPs, p.IP, p.IP6)
				}
				if p.IP6 != "" && !inCIDR(p.IP6, DefaultSubnet6) {
					t.Errorf("pod %s: IPv6 %s outside %s", p.Label(), p.IP6, DefaultSubnet6)
				}
				if err := p.Serve(8080); err != nil {
					t.Fatal(err)
				}
			}
			for _, single := range fam.Single() {
				for _, proto := range []string{"tcp", "udp"} {
					got := MatrixTimeout(pods, In(pods, single), proto, 8080, 2*time.Second)
					if d := got.Diff(NewTable(Labels(pods), Labels(pods), true)); len(d) > 0 {
						t.Errorf("%s %s/8080:\n%s\n%s", single, proto, got, strings.Join(d, "\n"))
					}
				}
			}
			// The node (kubelet) reaches its pods over each family too.
			for _, single := range fam.Single() {
				if err := ProbeOnce(n, pods[0].AddrIn(single), "tcp", 8080, 2*time.Second); err != nil {
					t.Errorf("node -> pod over %s: %v", single, err)
				}
			}
		})
	}
}

// TestProbeConnectsOverTheFamilyAsked: a probe to an IPv6 address opens an
// IPv6 socket (the server sees an IPv6 peer), to an IPv4 address an IPv4
// one, so a family's truth table cannot be answered by the other family.
func TestProbeConnectsOverTheFamilyAsked(t *testing.T) {
	t.Parallel()
	n := bridgeNode(t, Options{Family: DualStack})
	pods := addPods(t, n, "a/x", "a/y")
	for _, single := range []Family{IPv4, IPv6} {
		to := pods[1].AddrIn(single)
		conn, err := dialIn(pods[0].NetNSPath, "", to, "tcp", 1, time.Now().Add(time.Second))
		if err == nil {
			conn.Close()
		}
		// Nothing listens on port 1: the pod's kernel answers with a reset
		// over the family of the connection.
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("dial %s port 1: %v, want connection refused", to, err)
		}
		if (net.ParseIP(to).To4() == nil) != (single == IPv6) {
			t.Errorf("AddrIn(%s) = %s", single, to)
		}
	}
}

// TestClusterFamilies: three bridge-only nodes of each family with IPv6
// (IPv6-only, dual-stack): pods placed round-robin get PlacedIP6, reach each
// other across nodes over IPv6 through the host-gw routes (and over IPv4
// when dual-stack), TCP and UDP.
func TestClusterFamilies(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	for _, fam := range []Family{IPv6, DualStack} {
		t.Run(string(fam), func(t *testing.T) {
			c := NewCluster(t, ClusterOptions{Nodes: 3, Node: Options{BridgeOnly: true, Family: fam}})
			var pods []*Pod
			for i := range 4 {
				p, err := c.Place(i).AddPod("ns", string(rune('a'+i)))
				if err != nil {
					t.Fatal(err)
				}
				if p.IP6 != c.PlacedIP6(i) || (fam.Has4() && p.IP != c.PlacedIP(i)) || (!fam.Has4() && p.IP != "") {
					t.Errorf("pod %d: %v, want IPv6 %s (and IPv4 %s: %v)", i, p.IPs, c.PlacedIP6(i), c.PlacedIP(i), fam.Has4())
				}
				if err := p.Serve(8080); err != nil {
					t.Fatal(err)
				}
				pods = append(pods, p)
			}
			for _, single := range fam.Single() {
				for _, proto := range []string{"tcp", "udp"} {
					got := MatrixTimeout(pods, In(pods, single), proto, 8080, 2*time.Second)
					if d := got.Diff(NewTable(Labels(pods), Labels(pods), true)); len(d) > 0 {
						t.Errorf("%s %s cross-node matrix:\n%s\n%s", single, proto, got, strings.Join(d, "\n"))
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := c.Nodes[0].Exec(ctx, "ip", "-6", "route")
			if err != nil {
				t.Fatal(err)
			}
			want := c.Nodes[1].Subnet6 + " via " + c.Nodes[1].UnderlayIP6 + " dev " + UnderlayDev
			if !strings.Contains(string(out), want) {
				t.Errorf("node-1 lacks route %q:\n%s", want, out)
			}
		})
	}
}

func TestSubnetEnvFamilies(t *testing.T) {
	n := localNode(t)
	n.Subnet6, n.Gateway6 = "fd00:10:244:2::/64", "fd00:10:244:2::1"
	e, err := n.defaultSubnetEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.2.1/24\n" +
		"FLANNEL_IPV6_NETWORK=fd00:10:244::/48\nFLANNEL_IPV6_SUBNET=fd00:10:244:2::1/64\n" +
		"FLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n"
	if e.String() != want {
		t.Errorf("dual-stack subnet.env:\n%s\nwant:\n%s", e, want)
	}
	n.Subnet, n.Gateway = "", ""
	if e, err = n.defaultSubnetEnv(); err != nil {
		t.Fatal(err)
	}
	if s := e.String(); strings.Contains(s, "FLANNEL_NETWORK") || !strings.Contains(s, "FLANNEL_IPV6_SUBNET=fd00:10:244:2::1/64\n") {
		t.Errorf("IPv6-only subnet.env:\n%s", s)
	}
}

func TestParseFamily(t *testing.T) {
	for _, s := range []string{"ipv4", "ipv6", "dual"} {
		if f, err := ParseFamily(s); err != nil || string(f) != s {
			t.Errorf("ParseFamily(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFamily("v6"); err == nil || !strings.Contains(err.Error(), `"v6"`) {
		t.Errorf("ParseFamily(v6): %v", err)
	}
	if got := withDefaults(Options{Family: IPv6}); got.Subnet != "" || got.Subnet6 != DefaultSubnet6 {
		t.Errorf("IPv6 defaults: subnet %q, subnet6 %q", got.Subnet, got.Subnet6)
	}
	if got := withDefaults(Options{Subnet6: "fd00:1::/64"}); got.Family != DualStack || got.Subnet != DefaultSubnet {
		t.Errorf("Subnet6 alone: family %q, subnet %q", got.Family, got.Subnet)
	}
}

func inCIDR(ip, cidr string) bool {
	_, n, err := net.ParseCIDR(cidr)
	return err == nil && n.Contains(net.ParseIP(ip))
}
