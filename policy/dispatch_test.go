package policy

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/ipt"
)

// groupsWorld is a node whose n local pods are each selected by a policy of
// their own (n groups per direction: ingress from app=client on TCP 80,
// egress to anything on TCP 53), plus an unselected client pod.
func groupsWorld(t *testing.T, n int) (*Compiled, []string) {
	t.Helper()
	s := &Snapshot{Version: SnapshotVersion, Node: "n1", Namespaces: []Namespace{{Name: "ns"}}}
	var atts []Attachment
	var ips []string
	port80, port53 := intstr.FromInt32(80), intstr.FromInt32(53)
	tcp := corev1.ProtocolTCP
	for i := 0; i <= n; i++ {
		name, app := fmt.Sprintf("p%d", i), fmt.Sprintf("a%d", i)
		if i == n {
			name, app = "client", "client"
		}
		ip := fmt.Sprintf("10.1.%d.%d", i/200, i%200+2)
		s.Pods = append(s.Pods, Pod{Namespace: "ns", Name: name, Node: "n1", Labels: map[string]string{"app": app}})
		atts = append(atts, Attachment{ContainerID: "c-" + name, IfName: "eth0", Namespace: "ns", Name: name, IPs: []string{ip}})
		if i == n {
			break
		}
		ips = append(ips, ip)
		s.Policies = append(s.Policies, networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "np-" + app},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port80}},
				}},
				Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port53}}}},
			},
		})
	}
	c, err := Compile(s, atts)
	if err != nil {
		t.Fatal(err)
	}
	return c, ips
}

// walkedToGroup returns how many rules a packet was tested against from
// the first rule of chain until it reached a group chain, and how many set
// lookups testing them took; -1 when it never reached a group chain.
func walkedToGroup(rs *ipt.Ruleset, res TraceResult, chain string) (rules, lookups int) {
	byName := map[string]ipt.Chain{}
	for _, ch := range rs.Chains {
		byName[ch.Name] = ch
	}
	start := slices.IndexFunc(res.Walked, func(r RuleRef) bool { return r.Chain == chain })
	if start < 0 {
		return -1, -1
	}
	for _, ref := range res.Walked[start:] {
		r := byName[ref.Chain].Rules[ref.Index]
		rules++
		lookups += ref.Lookups
		if ref.Matched && strings.HasPrefix(string(r.Verdict.Target), ipt.Prefix+"-G") {
			return rules, lookups
		}
	}
	return -1, -1
}

// TestDispatchIsLogarithmic builds 10, 100 and 1,000 groups per direction
// and traces a new connection to (ingress) and from (egress) the pod of
// every group: the rules it is tested against before it reaches its group
// chain must grow with log2(groups), never with groups, and the verdict
// must be the group's.
func TestDispatchIsLogarithmic(t *testing.T) {
	for _, n := range []int{10, 100, 1000} {
		c, ips := groupsWorld(t, n)
		rs := c.Ruleset(ipt.IPv4)
		client := fmt.Sprintf("10.1.%d.%d", n/200, n%200+2)
		// One rule and one lookup a level (the lower half's rules follow
		// in the same chain), the DENY and isolated rules, a leaf of at
		// most leafGroups: 7, 10 and 13 at 10, 100 and 1,000 groups (10,
		// 16 and 22 rules when a level took a second rule to reach the
		// lower half).
		bound := bits.Len(uint(n-1)) - 1 + 2 + 2
		worst := map[Direction]int{}
		worstLookups := map[Direction]int{}
		for i, ip := range ips {
			if n > 100 && i%7 != 0 && i != n-1 && bits.OnesCount(uint(i)) > 1 {
				continue // every 7th group, the last and the powers of two: the trace is slow at 1,000 sets
			}
			for _, tc := range []struct {
				d       Direction
				chain   string
				pkt     Packet
				allowed bool
			}{
				{Ingress, ChainIngress, Packet{Src: client, Dst: ip, Protocol: "tcp", DPort: 80, Bridged: i%2 == 0}, true},
				{Ingress, ChainIngress, Packet{Src: client, Dst: ip, Protocol: "tcp", DPort: 81, Bridged: i%2 == 0}, false},
				{Egress, ChainEgress, Packet{Src: ip, Dst: client, Protocol: "tcp", DPort: 53, Bridged: i%2 == 1}, true},
				{Egress, ChainEgress, Packet{Src: ip, Dst: client, Protocol: "tcp", DPort: 54, Bridged: i%2 == 1}, false},
			} {
				res, err := Trace(c, tc.pkt)
				if err != nil {
					t.Fatal(err)
				}
				if res.Allowed != tc.allowed {
					t.Fatalf("%d groups: %+v allowed=%v, want %v; rules: %q", n, tc.pkt, res.Allowed, tc.allowed, res.Rules)
				}
				walked, lookups := walkedToGroup(rs, res, tc.chain)
				if walked < 0 {
					t.Fatalf("%d groups: %+v never reached a group chain: %q", n, tc.pkt, res.Rules)
				}
				if walked > bound || lookups > bound {
					t.Errorf("%d groups: %+v walked %d rules and %d set lookups before its group chain, want <= %d each", n, tc.pkt, walked, lookups, bound)
				}
				worst[tc.d] = max(worst[tc.d], walked)
				worstLookups[tc.d] = max(worstLookups[tc.d], lookups)
			}
		}
		t.Logf("%4d groups: a new connection walks at most %d rules (%d set lookups) in %s and %d rules (%d set lookups) in %s before its group chain (bound %d)",
			n, worst[Ingress], worstLookups[Ingress], ChainIngress, worst[Egress], worstLookups[Egress], ChainEgress, bound)
	}
}

// TestDispatchFallsBackToScan corrupts the bit sets the way a cut-short
// sync or ADD could leave them (a pod missing from one, a pod in one it
// does not belong to): the tree then misses, and the scan chain still
// sends the packet to the pod's own group, never another's.
func TestDispatchFallsBackToScan(t *testing.T) {
	c, ips := groupsWorld(t, 10)
	rs := c.Ruleset(ipt.IPv4)
	client := "10.1.0.12"
	var changed int
	for i := range rs.Sets {
		s := &rs.Sets[i]
		if !strings.HasPrefix(s.Name, familyPrefix(ipt.IPv4)+"-BIT-I-") {
			continue
		}
		// Flip every pod's membership: each pod's tree path now leads to a
		// group that is not its own.
		in := map[string]bool{}
		for _, m := range s.Members {
			in[m.Entry] = true
		}
		s.Members = nil
		for _, ip := range ips {
			if !in[ip] {
				s.Members = append(s.Members, ipt.Member{Entry: ip})
			}
		}
		changed++
	}
	if changed == 0 {
		t.Fatal("no ingress bit set to corrupt: the tree has no inner node at 10 groups")
	}
	for _, ip := range ips {
		for port, want := range map[int32]bool{80: true, 81: false} {
			res, err := Trace(c, Packet{Src: client, Dst: ip, Protocol: "tcp", DPort: port, Bridged: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Allowed != want {
				t.Errorf("client -> %s:%d allowed=%v, want %v: %q", ip, port, res.Allowed, want, res.Rules)
			}
			if !slices.ContainsFunc(res.Rules, func(r string) bool { return strings.HasPrefix(r, "-A "+scanChain(Ingress)+" ") }) {
				t.Errorf("client -> %s:%d did not fall back to %s: %q", ip, port, scanChain(Ingress), res.Rules)
			}
		}
	}
}

// TestIsolatedWithoutGroupIsDropped: a pod in the isolated set but in none
// of its group sets (an ADD cut short, a set damaged) is not left
// unrestricted: the scan chain ends in a drop, in both directions.
func TestIsolatedWithoutGroupIsDropped(t *testing.T) {
	for _, n := range []int{1, 3, 10} {
		c, ips := groupsWorld(t, n)
		rs := c.Ruleset(ipt.IPv4)
		victim := ips[0]
		for i := range rs.Sets {
			s := &rs.Sets[i]
			if s.Name == isoSet(ipt.IPv4, Ingress) || s.Name == isoSet(ipt.IPv4, Egress) {
				continue
			}
			s.Members = slices.DeleteFunc(slices.Clone(s.Members), func(m ipt.Member) bool { return m.Entry == victim })
		}
		for _, p := range []Packet{
			{Src: "10.9.9.9", Dst: victim, Protocol: "tcp", DPort: 80}, // another node's address: unrestricted
			{Src: victim, Dst: "10.9.9.9", Protocol: "tcp", DPort: 53},
		} {
			res, err := TraceRuleset(rs, p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Allowed {
				t.Errorf("n=%d: %s -> %s allowed with %s in the isolated set and no group set; walked:\n%s",
					n, p.Src, p.Dst, victim, strings.Join(res.Rules, "\n"))
			}
		}
	}
}

// TestEntriesGateOrder: an ADD adds the pod's isolated-set entries before
// its group and bit entries (a cut-short ADD leaves it isolated, hence
// dropped, never unrestricted), and a DEL removes them, and DENY, last.
func TestEntriesGateOrder(t *testing.T) {
	c, _ := groupsWorld(t, 5)
	att := Attachment{ContainerID: "c-p3", IfName: "eth0", Namespace: "ns", Name: "p3", IPs: []string{"10.1.0.5"}}
	idx := c.Index
	gate := func(e ipt.Entry) bool {
		return e.Set == isoSet(ipt.IPv4, Ingress) || e.Set == isoSet(ipt.IPv4, Egress) || e.Set == DenySet(ipt.IPv4)
	}
	add := idx.Entries(&att)
	if len(add) < 4 || !gate(add[0]) || !gate(add[1]) || slices.ContainsFunc(add[2:], gate) {
		t.Errorf("ADD entries %v: want the two isolated sets first, then the rest", add)
	}
	del := idx.Release(&att, nil)
	k := len(del) - 3 // both isolated sets and DENY, last
	if k < 1 || slices.ContainsFunc(del[:k], gate) || !gate(del[k]) || !gate(del[k+1]) || del[k+2].Set != DenySet(ipt.IPv4) {
		t.Errorf("DEL entries %v: want the group and bit entries first, then the isolated sets, then DENY", del)
	}
}
