package policy

import (
	"math/rand"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/netpol/netpol/ipt"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// The world of these tests: node n1 with pods in default, proj (labelled
// project=myproject) and alice (user=alice); one pod of node n2.
var (
	testNamespaces = []Namespace{
		{Name: "default"},
		{Name: "proj", Labels: map[string]string{"project": "myproject"}},
		{Name: "alice", Labels: map[string]string{"user": "alice"}},
	}
	testPods = []Pod{
		{Namespace: "default", Name: "db", Node: "n1", Labels: map[string]string{"role": "db"},
			Ports: []NamedPort{{Name: "redis", Protocol: "TCP", Port: 6379}}},
		{Namespace: "default", Name: "fe", Node: "n1", Labels: map[string]string{"role": "frontend"}},
		{Namespace: "default", Name: "client", Node: "n1", Labels: map[string]string{"role": "client"}},
		{Namespace: "proj", Name: "p", Node: "n1", Labels: map[string]string{"role": "x"}},
		{Namespace: "alice", Name: "ac", Node: "n1", Labels: map[string]string{"role": "client"}},
		{Namespace: "alice", Name: "ax", Node: "n1", Labels: map[string]string{"role": "other"}},
		{Namespace: "proj", Name: "remote", Node: "n2", IPs: []string{"10.244.2.7"}},
	}
	testAtts = []Attachment{
		{ContainerID: "c-db", Namespace: "default", Name: "db", IPs: []string{"10.244.1.2", "fd00::2"}},
		{ContainerID: "c-fe", Namespace: "default", Name: "fe", IPs: []string{"10.244.1.3", "fd00::3"}},
		{ContainerID: "c-client", Namespace: "default", Name: "client", IPs: []string{"10.244.1.4"}},
		{ContainerID: "c-p", Namespace: "proj", Name: "p", IPs: []string{"10.244.1.5"}},
		{ContainerID: "c-ac", Namespace: "alice", Name: "ac", IPs: []string{"10.244.1.6"}},
		{ContainerID: "c-ax", Namespace: "alice", Name: "ax", IPs: []string{"10.244.1.7"}},
	}
)

const (
	db, fe, client, p, ac, ax, remote = "10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6", "10.244.1.7", "10.244.2.7"
)

const seedPolicy = `
metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
    - namespaceSelector: {matchLabels: {project: myproject}}
    - podSelector: {matchLabels: {role: frontend}}
    ports: [{protocol: TCP, port: 6379}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{protocol: TCP, port: 5978}]
`

func parsePolicies(t *testing.T, docs ...string) []networkingv1.NetworkPolicy {
	t.Helper()
	var out []networkingv1.NetworkPolicy
	for _, d := range docs {
		var np networkingv1.NetworkPolicy
		if err := yaml.UnmarshalStrict([]byte(d), &np); err != nil {
			t.Fatalf("policy: %v", err)
		}
		out = append(out, np)
	}
	return out
}

func compileWorld(t *testing.T, docs ...string) *Compiled {
	t.Helper()
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: testPods,
		Policies: parsePolicies(t, docs...)}
	c, err := Compile(s, testAtts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type probe struct {
	name     string
	pkt      packet
	expected bool
}

func tcp(src, dst string, port int32) packet {
	return Packet{Src: src, Dst: dst, Protocol: "tcp", DPort: port, Bridged: true}
}
func udp(src, dst string, port int32) packet {
	return Packet{Src: src, Dst: dst, Protocol: "udp", DPort: port, Bridged: true}
}

func runProbes(t *testing.T, c *Compiled, probes []probe) {
	t.Helper()
	for _, pr := range probes {
		for _, bridged := range []bool{true, false} {
			pk := pr.pkt
			pk.Bridged = bridged
			if got := trace(t, c, pk); got != pr.expected {
				t.Errorf("%s (bridged=%v): allowed=%v, want %v", pr.name, bridged, got, pr.expected)
			}
		}
	}
}

func TestSeedPolicy(t *testing.T) {
	c := compileWorld(t, seedPolicy)
	runProbes(t, c, []probe{
		{"frontend to db:6379", tcp(fe, db, 6379), true},
		{"frontend to db:80 (port not listed)", tcp(fe, db, 80), false},
		{"frontend to db udp:6379 (protocol)", udp(fe, db, 6379), false},
		{"client to db:6379 (label not selected)", tcp(client, db, 6379), false},
		{"pod of project=myproject namespace to db", tcp(p, db, 6379), true},
		{"remote pod of project=myproject namespace to db", tcp(remote, db, 6379), true},
		{"alice pod to db", tcp(ac, db, 6379), false},
		{"172.17.0.5 to db", tcp("172.17.0.5", db, 6379), true},
		{"172.17.1.5 (except) to db", tcp("172.17.1.5", db, 6379), false},
		{"172.18.0.5 to db", tcp("172.18.0.5", db, 6379), false},
		{"db to 10.0.0.5:5978", tcp(db, "10.0.0.5", 5978), true},
		{"db to 10.0.0.5:80", tcp(db, "10.0.0.5", 80), false},
		{"db to 10.0.1.5:5978", tcp(db, "10.0.1.5", 5978), false},
		{"db to frontend (egress isolated)", tcp(db, fe, 80), false},
		{"frontend to client (neither selected)", tcp(fe, client, 80), true},
		{"alice to frontend (not selected)", tcp(ac, fe, 80), true},
	})
}

func TestPeersOrVersusAnd(t *testing.T) {
	or := `
metadata: {name: or, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {user: alice}}
    - podSelector: {matchLabels: {role: client}}
`
	and := `
metadata: {name: and, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {user: alice}}
      podSelector: {matchLabels: {role: client}}
`
	runProbes(t, compileWorld(t, or), []probe{
		{"alice client", tcp(ac, db, 80), true},
		{"alice other (namespace alone suffices)", tcp(ax, db, 80), true},
		{"default client (pod alone suffices)", tcp(client, db, 80), true},
		{"default frontend", tcp(fe, db, 80), false},
		{"proj pod", tcp(p, db, 80), false},
	})
	runProbes(t, compileWorld(t, and), []probe{
		{"alice client", tcp(ac, db, 80), true},
		{"alice other (pod label missing)", tcp(ax, db, 80), false},
		{"default client (namespace label missing)", tcp(client, db, 80), false},
	})
}

func TestDefaultDenyAndUnion(t *testing.T) {
	denyIngress := `
metadata: {name: deny-ingress, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress]}
`
	denyEgress := `
metadata: {name: deny-egress, namespace: default}
spec: {podSelector: {}, policyTypes: [Egress]}
`
	allowFromProj := `
metadata: {name: allow-proj, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {project: myproject}}}], ports: [{port: 80}]}]
`
	allowUDP := `
metadata: {name: allow-udp, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{ports: [{protocol: UDP, port: 53}]}]
`
	runProbes(t, compileWorld(t, denyIngress), []probe{
		{"into default is denied", tcp(p, db, 80), false},
		{"within default is denied", tcp(fe, client, 80), false},
		{"out of default is allowed", tcp(db, p, 80), true},
	})
	runProbes(t, compileWorld(t, denyEgress), []probe{
		{"out of default is denied", tcp(db, p, 80), false},
		{"into default is allowed", tcp(p, db, 80), true},
	})
	runProbes(t, compileWorld(t, denyIngress, allowFromProj, allowUDP), []probe{
		{"proj to db:80 (allow-proj)", tcp(p, db, 80), true},
		{"proj to db:81", tcp(p, db, 81), false},
		{"anyone to db udp:53 (allow-udp)", udp(ac, db, 53), true},
		{"anyone to db tcp:53", tcp(ac, db, 53), false},
		{"proj to frontend (only deny-ingress)", tcp(p, fe, 80), false},
	})
}

func TestPortsNamedAndRanges(t *testing.T) {
	named := `
metadata: {name: named, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{ports: [{port: redis}]}]
`
	ranged := `
metadata: {name: ranged, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{ports: [{port: 1000, endPort: 2000}, {protocol: UDP}]}]
`
	runProbes(t, compileWorld(t, named), []probe{
		{"named port redis resolves to 6379 on db", tcp(fe, db, 6379), true},
		{"other port", tcp(fe, db, 6380), false},
		{"redis is TCP only", udp(fe, db, 6379), false},
	})
	runProbes(t, compileWorld(t, ranged), []probe{
		{"range start", tcp(fe, db, 1000), true},
		{"range end", tcp(fe, db, 2000), true},
		{"past the range", tcp(fe, db, 2001), false},
		{"any UDP port", udp(fe, db, 9), true},
	})
}

func TestFailClosedForUnknownPods(t *testing.T) {
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: testPods,
		Policies: parsePolicies(t, seedPolicy)}
	atts := append([]Attachment{
		{ContainerID: "c-new", Namespace: "default", Name: "new", IPs: []string{"10.244.1.50"}},
		{ContainerID: "c-new2", Namespace: "alice", Name: "new2", IPs: []string{"10.244.1.51"}},
	}, testAtts...)
	c, err := Compile(s, atts)
	if err != nil {
		t.Fatal(err)
	}
	runProbes(t, c, []probe{
		{"unknown pod in a namespace with policies cannot send", tcp("10.244.1.50", fe, 80), false},
		{"unknown pod in a namespace with policies cannot receive", tcp(fe, "10.244.1.50", 80), false},
		{"unknown pod in a namespace without policies may send", tcp("10.244.1.51", fe, 80), true},
		{"unknown pod in a namespace without policies may receive", tcp(fe, "10.244.1.51", 80), true},
	})
	idx := &c.Index
	if got := idx.Entries(&atts[0]); !cmp.Equal(got, []ipt.Entry{{Set: "NETPOL4-DENY", Value: "10.244.1.50"}}) {
		t.Errorf("entries of unknown pod in isolated namespace: %v", got)
	}
	if got := idx.Entries(&atts[1]); len(got) != 0 {
		t.Errorf("entries of unknown pod in open namespace: %v", got)
	}
	var none *Index
	if got := none.Entries(&atts[1]); !cmp.Equal(got, []ipt.Entry{{Set: "NETPOL4-DENY", Value: "10.244.1.51"}}) {
		t.Errorf("with no index every pod is denied: %v", got)
	}
}

func TestIPv6(t *testing.T) {
	c := compileWorld(t, seedPolicy, `
metadata: {name: v6, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{ipBlock: {cidr: "fd00::/64", except: ["fd00::3/128"]}}]}]
`)
	runProbes(t, c, []probe{
		{"frontend over IPv6 to db:6379 (pod selector)", tcp("fd00::3", "fd00::2", 6379), true},
		{"frontend over IPv6 to db:80 (excepted from the block)", tcp("fd00::3", "fd00::2", 80), false},
		{"fd00::9 to db:80 (in the block)", tcp("fd00::9", "fd00::2", 80), true},
	})
}

// TestDeterministic: the same input in any order compiles to the same output.
func TestDeterministic(t *testing.T) {
	first := compileWorld(t, seedPolicy, `
metadata: {name: deny, namespace: default}
spec: {podSelector: {}}
`)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 5; i++ {
		pods := append([]Pod(nil), testPods...)
		atts := append([]Attachment(nil), testAtts...)
		rng.Shuffle(len(pods), func(a, b int) { pods[a], pods[b] = pods[b], pods[a] })
		rng.Shuffle(len(atts), func(a, b int) { atts[a], atts[b] = atts[b], atts[a] })
		s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: testNamespaces, Pods: pods,
			Policies: parsePolicies(t, `
metadata: {name: deny, namespace: default}
spec: {podSelector: {}}
`, seedPolicy)}
		again, err := Compile(s, atts)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(first, again, cmpopts.IgnoreUnexported(Compiled{})); d != "" {
			t.Fatalf("shuffle %d changed the output (-first +again):\n%s", i, d)
		}
	}
}

// TestCompileUnknownDeniesEveryRecordedPod: before the agent's first sync,
// each ADD installs the whole bootstrap state, so it must deny every pod
// recorded so far, not only the newest one.
func TestCompileUnknownDeniesEveryRecordedPod(t *testing.T) {
	c, err := CompileUnknown(testAtts[:3], DefaultDropLog())
	if err != nil {
		t.Fatal(err)
	}
	runProbes(t, c, []probe{
		{"first recorded pod cannot send", tcp(db, "10.244.1.99", 80), false},
		{"second recorded pod cannot receive", tcp("10.244.1.99", fe, 80), false},
		{"third recorded pod cannot send", tcp(client, "10.244.1.99", 80), false},
		{"an unrecorded address is not ours to block", tcp("10.244.1.98", "10.244.1.99", 80), true},
	})
	if c.Index.Pods != nil || c.Index.Isolated != nil {
		t.Errorf("bootstrap must not produce an index the plugin could trust: %+v", c.Index)
	}
	deny := c.Ruleset(ipt.IPv6).Sets[0]
	if deny.Name != "NETPOL6-DENY" || len(deny.Members) != 2 {
		t.Errorf("IPv6 deny set: %+v, want fd00::2 and fd00::3", deny)
	}
}
