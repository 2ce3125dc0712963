package integration

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/netpol/netpol/integration/node"
)

// hosts turns pods and other hosts into one list of probe endpoints.
func hosts[H node.Host](in ...H) []node.Host {
	out := make([]node.Host, len(in))
	for i, h := range in {
		out[i] = h
	}
	return out
}

// seedPolicy is the NetworkPolicy of the seed article, verbatim.
const seedPolicy = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
`

var seedWorld = world{
	namespaces: map[string]map[string]string{
		"default":   nil,
		"myproject": {"project": "myproject"},
		"other":     {"project": "other"},
	},
	pods: []podSpec{
		{"default", "db", map[string]string{"role": "db"}},
		{"default", "frontend", map[string]string{"role": "frontend"}},
		{"default", "backend", map[string]string{"role": "backend"}},
		{"myproject", "p", map[string]string{"role": "any"}},
		{"other", "q", map[string]string{"role": "frontend"}},
	},
}

// TestSeedPolicy enforces the seed article's policy on real connections, in
// both orders: policy known before the pods are created (each pod isolated
// from its first packet) and pods first, policy after.
func TestSeedPolicy(t *testing.T) {
	for _, order := range []string{"policy-first", "pods-first"} {
		t.Run(order, func(t *testing.T) {
			c := newCluster(t, seedWorld)
			if order == "policy-first" {
				c.policies(seedPolicy)
				c.addPods(6379, 80)
			} else {
				c.addPods(6379, 80)
				c.policies(seedPolicy)
			}
			// An "outside" network routed through the node holds the ipBlock
			// addresses: 172.17.0.5 (allowed), 172.17.1.5 (except), and the
			// egress destinations 10.0.0.5 (allowed) and 10.0.1.5 (not).
			out, err := c.node.AddOutside("ext", []string{"172.17.0.5/16", "172.17.1.5/16", "10.0.0.5/24", "10.0.1.5/24"})
			if err != nil {
				t.Fatal(err)
			}
			if err := out.Serve(5978, 80); err != nil {
				t.Fatal(err)
			}
			pods := c.podList("default/db", "default/frontend", "default/backend", "myproject/p", "other/q")
			from := append(hosts(pods...), out.At("172.17.0.5"), out.At("172.17.1.5"))
			expect(t, "ingress to TCP 6379", from, pods, "tcp", 6379,
				// db   fe   be   p    q
				".    X    X    X    X", // db: egress only to 10.0.0.0/24:5978
				".    .    .    .    .", // frontend: role=frontend in default
				"X    .    .    .    .", // backend: not a listed peer
				".    .    .    .    .", // p: namespace project=myproject
				"X    .    .    .    .", // q: role=frontend but in another namespace
				".    .    .    .    .", // 172.17.0.5: in the ipBlock
				"X    .    .    .    .", // 172.17.1.5: in the except
			)
			expect(t, "ingress to TCP 80 (port not allowed)", from, pods[:1], "tcp", 80,
				".", "X", "X", "X", "X", "X", "X")
			expect(t, "ingress to UDP 6379 (protocol not allowed)", hosts(pods[1]), pods[:1], "udp", 6379, "X")
			dst := []node.Host{out.At("10.0.0.5"), out.At("10.0.1.5")}
			expect(t, "egress to TCP 5978", hosts(pods[0], pods[1]), dst, "tcp", 5978,
				".X", // db: only 10.0.0.0/24
				"..", // frontend: not selected
			)
			expect(t, "egress to TCP 80 (port not allowed)", hosts(pods[0]), dst, "tcp", 80, "XX")
		})
	}
}

var twoNamespaces = world{
	namespaces: map[string]map[string]string{"default": nil, "blue": {"team": "blue"}, "red": {"team": "red"}},
	pods: []podSpec{
		{"default", "a", map[string]string{"app": "a"}},
		{"default", "b", map[string]string{"app": "b"}},
		{"blue", "c", map[string]string{"app": "c"}},
		{"red", "d", map[string]string{"app": "d"}},
	},
}

func TestDefaultDenyIngress(t *testing.T) {
	c := newCluster(t, twoNamespaces)
	c.addPods(80)
	c.sync() // the agent knows every pod; no policy yet
	pods := c.podList("default/a", "default/b", "blue/c", "red/d")
	expect(t, "before any policy", pods, pods, "tcp", 80, "....", "....", "....", "....")
	c.policies(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress]
`)
	for _, proto := range []string{"tcp", "udp"} {
		expect(t, "default-deny-ingress", pods, pods, proto, 80,
			// a b c d
			". X . .",
			"X . . .",
			"X X . .",
			"X X . .",
		)
	}
}

func TestDefaultDenyEgress(t *testing.T) {
	c := newCluster(t, twoNamespaces)
	c.addPods(80)
	c.policies(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Egress]
`)
	pods := c.podList("default/a", "default/b", "blue/c", "red/d")
	for _, proto := range []string{"tcp", "udp"} {
		expect(t, "default-deny-egress", pods, pods, proto, 80,
			". X X X",
			"X . X X",
			". . . .",
			". . . .",
		)
	}
}

func TestAllowFromNamespace(t *testing.T) {
	c := newCluster(t, twoNamespaces)
	c.addPods(80, 81)
	c.policies(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-blue, namespace: default}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: blue}}
    ports:
    - port: 80
    - port: 80
      protocol: UDP
`)
	pods := c.podList("default/a", "default/b", "blue/c", "red/d")
	for _, proto := range []string{"tcp", "udp"} {
		expect(t, "allow from team=blue", pods, pods, proto, 80,
			". X . .",
			"X . . .",
			". . . .", // blue may reach default
			"X X . .",
		)
	}
	expect(t, "allow from team=blue, port 81 not listed", pods, pods[:2], "tcp", 81,
		". X", "X .", "X X", "X X")
}

// TestPeersOrVersusAnd is the seed article's warning: namespaceSelector and
// podSelector as two peers (OR) versus in one peer (AND).
func TestPeersOrVersusAnd(t *testing.T) {
	w := world{
		namespaces: map[string]map[string]string{"default": nil, "alice": {"user": "alice"}, "bob": {"user": "bob"}},
		pods: []podSpec{
			{"default", "db", map[string]string{"role": "db"}},
			{"default", "client", map[string]string{"role": "client"}},
			{"alice", "client", map[string]string{"role": "client"}},
			{"alice", "web", map[string]string{"role": "web"}},
			{"bob", "client", map[string]string{"role": "client"}},
		},
	}
	const or = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {user: alice}}
    - podSelector: {matchLabels: {role: client}}
`
	const and = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {user: alice}}
      podSelector: {matchLabels: {role: client}}
`
	c := newCluster(t, w)
	c.addPods(80)
	from := c.podList("default/client", "alice/client", "alice/web", "bob/client")
	db := c.podList("default/db")
	c.policies(or)
	expect(t, "two peers (OR)", from, db, "tcp", 80,
		".", // role=client in default
		".", // namespace user=alice
		".", // namespace user=alice
		"X", // role=client, but the podSelector peer means the policy's namespace
	)
	c.policies(and) // same policy name: an update of the policy
	expect(t, "one peer (AND)", from, db, "tcp", 80,
		"X", // right pod label, wrong namespace
		".", // both
		"X", // right namespace, wrong pod label
		"X",
	)
}

// TestExplain asks the explain command about the seed policy, and checks its
// verdicts against real connections made in the same test.
func TestExplain(t *testing.T) {
	c := newCluster(t, seedWorld)
	c.addPods(6379)
	c.policies(seedPolicy)
	cases := []struct {
		from, to string
		port     int
		allowed  bool
		says     string
	}{
		{"default/frontend", "default/db", 6379, true, "allowed by default/test-network-policy ingress[0]"},
		{"default/backend", "default/db", 6379, false, "no rule of default/test-network-policy allows it"},
		{"default/db", "default/frontend", 6379, false, "egress of the source (default/db): DENIED"},
		{"myproject/p", "default/frontend", 6379, true, "no policy selects the pod for ingress"},
	}
	for _, tc := range cases {
		out, err := c.node.RunAgent("explain", "--from", tc.from, "--to", tc.to, "--port", fmt.Sprint(tc.port))
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		want := map[bool]int{true: 0, false: 1}[tc.allowed]
		if code != want || !strings.Contains(string(out), tc.says) {
			t.Errorf("explain %s -> %s:%d: exit %d (want %d), output lacks %q:\n%s", tc.from, tc.to, tc.port, code, want, tc.says, out)
		}
		real := node.Probe(c.pods[tc.from], c.pods[tc.to].IP, "tcp", tc.port, denyTimeout)
		if real != tc.allowed {
			t.Errorf("real connection %s -> %s:%d allowed=%v, explain says %v", tc.from, tc.to, tc.port, real, tc.allowed)
		}
	}
}
