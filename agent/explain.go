package agent

import (
	"fmt"
	"io"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/netpol/netpol/policy"
)

// ExplainQuery is "would From reach To on Protocol/Port". From and To are
// "namespace/name" of a pod or an IP address.
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
func (a *Agent) Explain(q ExplainQuery, w io.Writer) (bool, error) {
	snap, err := a.Store.ReadSnapshot()
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
	v := policy.Evaluate(snap, atts, policy.Connection{From: from, To: to, Protocol: q.Protocol, Port: q.Port})
	fmt.Fprintf(w, "%s (%s) -> %s (%s) %s/%d: %s\n", q.From, from, q.To, to, q.Protocol, q.Port, word(v.Allowed))
	explainSide(w, "egress of the source", v.Egress)
	explainSide(w, "ingress of the destination", v.Ingress)
	if from == to {
		return v.Allowed, nil
	}
	compiled, err := policy.Compile(snap, atts)
	if err != nil {
		return false, err
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

// resolve turns "namespace/name" into the pod's first address (recorded by
// CNI on this node, else its status IP), or checks an IP address.
func resolve(ref string, snap *policy.Snapshot, atts []policy.Attachment) (string, error) {
	if ip := net.ParseIP(ref); ip != nil {
		return ip.String(), nil
	}
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return "", fmt.Errorf("%q: want namespace/name or an IP address", ref)
	}
	for _, a := range atts {
		if a.Namespace == ns && a.Name == name && len(a.IPs) > 0 {
			return a.IPs[0], nil
		}
	}
	for _, p := range snap.Pods {
		if p.Namespace == ns && p.Name == name && len(p.IPs) > 0 {
			return p.IPs[0], nil
		}
	}
	return "", fmt.Errorf("pod %s has no known address", ref)
}
