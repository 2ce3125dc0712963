package integration

import (
	"strings"
	"testing"

	"github.com/netpol/netpol/integration/node"
)

// TestExplainLive: explain --live traces through the rules and sets read
// back from the node's kernel and names the rule that decides; after a set
// is changed behind the agent's back (other's address added to the peer
// set of web), it reports that the kernel and the snapshot disagree, and
// the kernel's verdict is what real traffic gets.
func TestExplainLive(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{"default/web": "app=web", "default/db": "app=db", "default/other": ""}))
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	syncOnce(t, n, dir)
	web, db, other := pods[0], pods[1], pods[2]
	port := "8080"

	out, errOut, code := runAgentSplit(t, n, "explain", "--live", "--from", "default/other", "--to", "default/db", "--port", port)
	if code != 1 || !strings.Contains(out, "live kernel rules and sets on the bridged path (same node): DENIED") ||
		!strings.Contains(out, `decided by: -A NETPOL-GI-`) || !strings.Contains(out, "-j DROP") {
		t.Fatalf("explain --live other -> db: exit %d, want 1 with the deciding DROP rule:\n%s%s", code, out, errOut)
	}
	t.Logf("explain --live other -> db:\n%s", out)
	if out, errOut, code := runAgentSplit(t, n, "explain", "--live", "--from", "default/web", "--to", "default/db", "--port", port); code != 0 ||
		!strings.Contains(out, "live kernel rules and sets on the routed path: ALLOWED") {
		t.Fatalf("explain --live web -> db: exit %d, want 0:\n%s%s", code, out, errOut)
	}

	peer := wantSets(t, nodeSets(t, n), "web", web.IP, "NETPOL4-P-")[0]
	execIn(t, n, "ipset", "add", peer, other.IP)
	out, errOut, code = runAgentSplit(t, n, "explain", "--live", "--from", "default/other", "--to", "default/db", "--port", port)
	if code != 2 || !strings.Contains(out, "DISAGREE on the bridged path (same node): the kernel ALLOWED, the snapshot's compiled rules DENIED") ||
		!strings.Contains(errOut, "disagree") {
		t.Fatalf("explain --live after a set changed behind the agent's back: exit %d, want 2 and the disagreement:\n%s%s", code, out, errOut)
	}
	t.Logf("explain --live, set changed behind the agent's back:\n%s%s", out, errOut)
	if err := node.ProbeOnce(other, db.IP, "tcp", servePort, 0); err != nil {
		t.Errorf("the kernel allows other -> db now, but the connection failed: %v", err)
	}
	// Without --live, explain answers from the snapshot and sees nothing wrong.
	if _, _, code := runAgentSplit(t, n, "explain", "--from", "default/other", "--to", "default/db", "--port", port); code != 1 {
		t.Errorf("explain without --live: exit %d, want 1 (the snapshot denies)", code)
	}
}
