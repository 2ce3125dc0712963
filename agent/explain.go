package agent

import (
	"fmt"
	"io"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state/cluster"
)

// ExplainQuery is "would From reach To on Protocol/Port". From and To are
// "namespace/name" of a pod or an IP address of either family.
type ExplainQuery struct {
	From, To string
	Protocol corev1.Protocol
	Port     int32
	// Live, when set, also traces through what the kernel holds now
	// (explain --live): the verdict is then the kernel's, and a kernel
	// that disagrees with the snapshot is an error.
	Live LiveReader
}

// Explain answers q from the stored snapshot and pod records twice: by the
// NetworkPolicy specification (policy.Evaluate: which policies select each
// end, which rules allow) and by tracing the packet through the compiled
// ruleset that the agent applies to the kernel (which rule decides). It
// writes a report to w and returns the verdict; the two answers disagreeing
// is an error.
//
// A pod named by namespace/name stands for each of its addresses, and the
// question is asked in every family both ends have: for two dual-stack
// pods, once over IPv4 and once over IPv6, and the verdict is ALLOWED only
// when both are. Ends with no family in common are an error.
func (a *Agent) Explain(q ExplainQuery, w io.Writer) (bool, error) {
	snap, err := cluster.ReadSnapshot(a.Store)
	if err != nil {
		return false, fmt.Errorf("read snapshot: %w", err)
	}
	atts, bad, err := a.Store.Attachments()
	if err != nil {
		return false, err
	}
	for _, q := range bad {
		fmt.Fprintf(w, "note: %v; its pod is unknown\n", q)
	}
	atts = policy.OwnAddresses(atts) // as Compile does, so that Evaluate agrees with it
	from, err := resolve(q.From, snap, atts)
	if err != nil {
		return false, err
	}
	to, err := resolve(q.To, snap, atts)
	if err != nil {
		return false, err
	}
	pairs := sameFamily(from, to)
	if len(pairs) == 0 {
		return false, fmt.Errorf("%s (%s) and %s (%s) have no address family in common",
			q.From, strings.Join(from, ", "), q.To, strings.Join(to, ", "))
	}
	compiled, err := policy.Compile(snap, atts)
	if err != nil {
		return false, err
	}
	allowed := true
	for _, pair := range pairs {
		ok, err := explainPair(w, q, pair, snap, atts, compiled)
		if err != nil {
			return false, err
		}
		allowed = allowed && ok
	}
	return allowed, nil
}

// explainPair explains q between the addresses pair[0] and pair[1].
func explainPair(w io.Writer, q ExplainQuery, pair [2]string, snap *policy.Snapshot, atts []policy.Attachment,
	compiled *policy.Compiled) (bool, error) {
	from, to := pair[0], pair[1]
	v := policy.Evaluate(snap, atts, policy.Connection{From: from, To: to, Protocol: q.Protocol, Port: q.Port})
	fmt.Fprintf(w, "%s (%s) -> %s (%s) %s/%d: %s\n", q.From, from, q.To, to, q.Protocol, q.Port, word(v.Allowed))
	explainSide(w, "egress of the source", v.Egress)
	explainSide(w, "ingress of the destination", v.Ingress)
	if from == to {
		return v.Allowed, nil
	}
	live := &liveRulesets{read: q.Live}
	verdict := v.Allowed
	for _, bridged := range []bool{true, false} {
		pk := policy.Packet{Src: from, Dst: to, Protocol: strings.ToLower(string(q.Protocol)), DPort: q.Port, Bridged: bridged}
		tr, err := policy.Trace(compiled, pk)
		if err != nil {
			return false, err
		}
		path := "routed path"
		if bridged {
			path = "bridged path (same node)"
		}
		fmt.Fprintf(w, "  kernel rules on the %s: %s\n", path, word(tr.Allowed))
		for _, r := range tr.Rules {
			fmt.Fprintf(w, "    %s\n", r)
		}
		if tr.Allowed != v.Allowed {
			return v.Allowed, fmt.Errorf("the compiled rules (%s) disagree with the specification (%s) on the %s", word(tr.Allowed), word(v.Allowed), path)
		}
		if q.Live != nil {
			if verdict, err = live.explainLive(w, pk, tr, path); err != nil {
				return verdict, err
			}
		}
	}
	return verdict, nil
}

// sameFamily pairs each address of from with each of to of the same
// family.
func sameFamily(from, to []string) [][2]string {
	var out [][2]string
	for _, a := range from {
		fa, _ := policy.AddressFamily(a)
		for _, b := range to {
			if fb, _ := policy.AddressFamily(b); fa == fb {
				out = append(out, [2]string{a, b})
			}
		}
	}
	return out
}

func explainSide(w io.Writer, title string, s policy.Side) {
	who := s.Pod
	if who == "" {
		who = "not a pod"
	}
	fmt.Fprintf(w, "  %s (%s): %s — %s\n", title, who, word(s.Verdict.Allowed()), s.Verdict)
	if len(s.Policies) > 0 {
		fmt.Fprintf(w, "    selected by: %s\n", strings.Join(s.Policies, ", "))
	}
}

func word(allowed bool) string {
	if allowed {
		return "ALLOWED"
	}
	return "DENIED"
}

// resolve turns "namespace/name" into the pod's addresses (recorded by CNI
// on this node, else its status IPs), or an IP address of either family
// into its canonical form (an IPv4-mapped one into IPv4, as the plugin
// records it).
func resolve(ref string, snap *policy.Snapshot, atts []policy.Attachment) ([]string, error) {
	if ip := net.ParseIP(ref); ip != nil {
		return []string{ip.String()}, nil
	}
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return nil, fmt.Errorf("%q: want namespace/name or an IP address", ref)
	}
	var ips []string
	for _, a := range atts {
		if a.Namespace == ns && a.Name == name {
			ips = append(ips, a.IPs...)
		}
	}
	if len(ips) == 0 {
		for _, p := range snap.Pods {
			if p.Namespace == ns && p.Name == name {
				ips = append(ips, p.IPs...)
			}
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("pod %s has no known address", ref)
	}
	return ips, nil
}
