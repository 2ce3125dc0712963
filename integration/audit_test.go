package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// auditedNamespaceYAML is namespace name annotated netpol.io/audit: "true".
func auditedNamespaceYAML(name string) string {
	return namespaceYAML(name) + "  annotations:\n    netpol.io/audit: \"true\"\n"
}

// TestAuditPassesWhatEnforcementDrops: with db-from-web in force, other
// cannot reach db; with namespace default annotated for audit every pair
// connects, through the group chain's would-deny rule (logged to NFLOG
// with the audit token) instead of its DROP; removing the annotation
// enforces again. The node-wide --audit flag does the same.
func TestAuditPassesWhatEnforcementDrops(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	podDocs := yamlDocs(podYAML("default/web", "app=web"), podYAML("default/db", "app=db"), podYAML("default/other", "app=other"))
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	enforced := []string{"default/web>default/db", "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web"}
	all := allPairs(node.Labels(pods)...)

	writeManifest(t, dir, "10-pods.yaml", yamlDocs(namespaceYAML("default"), podDocs))
	syncOnce(t, n, dir)
	expectMatrix(t, "enforced", pods, pods, enforced...)

	writeManifest(t, dir, "10-pods.yaml", yamlDocs(auditedNamespaceYAML("default"), podDocs))
	a := startAgent(t, n, dir)
	defer a.Stop()
	expectMatrix(t, "namespace in audit", pods, pods, all...)
	save := iptablesSave(t, n)
	for _, want := range []string{"ingress would be denied (audit)", "--nflog-prefix netpol-I-audit-nopolicy-"} {
		if !strings.Contains(save, want) {
			t.Errorf("audit rules lack %q:\n%s", want, save)
		}
	}
	if strings.Contains(save, "ingress denied: no policy allows it") {
		t.Errorf("a group DROP is left in audit:\n%s", save)
	}
	// The connections that passed are in the drop log as would-deny.
	var wouldDeny []string
	if _, ok := waitFor(10*time.Second, 200*time.Millisecond, func() bool {
		wouldDeny = nil
		for _, r := range dropRecords(t, n) {
			if r.Verdict == "would-deny" && r.Dst.Pod == "default/db" && r.Direction == "ingress" {
				wouldDeny = append(wouldDeny, r.Src.Pod)
			}
		}
		return slices.Contains(wouldDeny, "default/other")
	}); !ok {
		t.Errorf("no would-deny record of default/other -> default/db (would-deny from: %v):\n%s", wouldDeny, a.Output())
	}
	if slices.Contains(wouldDeny, "default/web") {
		t.Errorf("a would-deny record of web -> db, which the policy allows")
	}

	writeManifest(t, dir, "10-pods.yaml", yamlDocs(namespaceYAML("default"), podDocs))
	db, other := pods[1], pods[2]
	if _, ok := waitFor(10*time.Second, 50*time.Millisecond, func() bool {
		return node.ProbeOnce(other, db.IP, "tcp", servePort, 200*time.Millisecond) != nil
	}); !ok {
		t.Fatalf("annotation removed: other still reaches db after 10s:\n%s", a.Output())
	}
	expectMatrix(t, "annotation removed: enforced again", pods, pods, enforced...)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	if out, err := n.RunAgent("--once", "--audit", "--manifests", dir, "--node-name", n.Name); err != nil {
		t.Fatalf("agent --once --audit: %v\n%s", err, out)
	}
	expectMatrix(t, "node-wide --audit", pods, pods, all...)
	syncOnce(t, n, dir)
	expectMatrix(t, "without --audit: enforced again", pods, pods, enforced...)
}
