package integration

// A warm `netpol-agent --manifests DIR --once` skips the kernel transaction
// and the state writes only when the kernel, read back, holds exactly what
// it would write: whatever is removed or added behind its back is repaired
// by the next run, as by a cold one.

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netpol/netpol/integration/node"
)

// onceInForce runs --once and reports whether it found everything in force
// (its sync line says in_force=true).
func onceInForce(t *testing.T, n *node.Node, dir string) bool {
	t.Helper()
	inForce, _ := onceProven(t, n, dir)
	return inForce
}

// onceProven is onceInForce, also reporting whether the run took the rules
// as proven unchanged since the last read-back (the stored rules proof)
// rather than reading them.
func onceProven(t *testing.T, n *node.Node, dir string) (inForce, proven bool) {
	t.Helper()
	out, err := n.RunAgent("--once", "--manifests", dir, "--node-name", n.Name)
	if err != nil {
		t.Fatalf("agent --once: %v\n%s", err, out)
	}
	proven = strings.Contains(string(out), `rules="proven unchanged"`)
	switch {
	case strings.Contains(string(out), "in_force=true"):
		return true, proven
	case strings.Contains(string(out), "in_force=false"):
		return false, proven
	}
	t.Fatalf("agent --once logged no in_force:\n%s", out)
	return false, false
}

func TestAgentOnceWarmRepairsDrift(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{
		"default/web": "app=web", "default/db": "app=db", "default/other": "",
	}))
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	web, db, other := pods[0], pods[1], pods[2]
	allowed := []string{"default/web>default/db", "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web"}

	if onceInForce(t, n, dir) {
		t.Fatal("the first --once found its rules in force")
	}
	good, goodSets, goodFiles := enforcedRules(t, n), nodeSets(t, n), dataFiles(t, n)
	if !onceInForce(t, n, dir) {
		t.Fatal("a second --once with nothing changed did not find its rules in force")
	}
	if got := enforcedRules(t, n); got != good {
		t.Errorf("a warm --once changed the rules:\n%s\nwant:\n%s", got, good)
	}
	if inForce, proven := onceProven(t, n, dir); !inForce || !proven {
		t.Fatalf("a third --once with nothing changed: in force %v, rules proven %v; want both", inForce, proven)
	}
	expectMatrix(t, "warm", pods, pods, allowed...)

	group4 := wantSets(t, goodSets, "db", db.IP, "NETPOL4-GI-")[0]
	peer4 := wantSets(t, goodSets, "web", web.IP, "NETPOL4-P-")[0]
	tamper := []struct {
		name string
		do   func()
	}{
		{"a peer set member deleted", func() { execIn(t, n, "ipset", "del", peer4, web.IP) }},
		{"a group set member deleted", func() { execIn(t, n, "ipset", "del", group4, db.IP) }},
		{"a member added", func() { execIn(t, n, "ipset", "add", peer4, other.IP) }},
		{"NETPOL-INGRESS flushed", func() { execIn(t, n, "iptables", "-w", "-F", "NETPOL-INGRESS") }},
		{"the IPv6 NETPOL-INGRESS flushed", func() { execIn(t, n, "ip6tables", "-w", "-F", "NETPOL-INGRESS") }},
		{"the hook deleted", func() { execIn(t, n, "iptables", "-w", "-D", "FORWARD", "1") }},
		{"a stray chain of ours", func() { execIn(t, n, "iptables", "-w", "-N", "NETPOL-STRAY") }},
		{"a stray set of ours", func() { execIn(t, n, "ipset", "create", "NETPOL4-STRAY", "hash:ip") }},
		{"a set destroyed", func() {
			// The set is in use by the rules that dispatch to its group.
			for _, ch := range []string{"NETPOL-INGRESS", "NETPOL-TI-0-1", "NETPOL-SCAN-I"} {
				execIn(t, n, "iptables", "-w", "-F", ch)
			}
			execIn(t, n, "ipset", "destroy", group4)
		}},
		{"the index removed", func() {
			if err := os.Remove(filepath.Join(n.DataDir, "index")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tamper {
		tc.do()
		if onceInForce(t, n, dir) {
			t.Errorf("%s: --once found its rules in force", tc.name)
		}
		if got := enforcedRules(t, n); got != good {
			t.Errorf("%s: rules not repaired:\n%s\nwant:\n%s", tc.name, got, good)
		}
		sets := nodeSets(t, n)
		for name, members := range goodSets {
			if !slices.Equal(sets[name], members) {
				t.Errorf("%s: set %s holds %v, want %v", tc.name, name, sets[name], members)
			}
		}
		for name := range sets {
			if _, ok := goodSets[name]; !ok {
				t.Errorf("%s: set %s left behind", tc.name, name)
			}
		}
		if got := dataFiles(t, n); !maps.Equal(got, goodFiles) {
			t.Errorf("%s: state files differ after the repair", tc.name)
		}
		if !onceInForce(t, n, dir) {
			t.Errorf("%s: after the repair, --once did not find its rules in force", tc.name)
		}
		if inForce, proven := onceProven(t, n, dir); !inForce || !proven {
			t.Errorf("%s: the next --once: in force %v, rules proven %v; want both", tc.name, inForce, proven)
		}
	}
	expectMatrix(t, "after every repair", pods, pods, allowed...)
}

// TestAgentOnceProvenChange: a --once after a label change, on a node
// whose rules a stored proof shows unchanged, changes only the sets (the
// rules are not read back) and leaves the node as a full sync would: the
// peer set follows the label, a member removed behind the agent's back
// meanwhile is put back, and changing the label back restores every rule
// and set.
func TestAgentOnceProvenChange(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	labels := map[string]string{"default/web": "app=web", "default/db": "app=db", "default/other": ""}
	writeManifest(t, dir, "10-pods.yaml", podsYAML(labels))
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	web, db := pods[0], pods[1]
	onceInForce(t, n, dir)
	onceInForce(t, n, dir) // reads back, stores the proof
	good, goodSets := enforcedRules(t, n), nodeSets(t, n)
	group4 := wantSets(t, goodSets, "db", db.IP, "NETPOL4-GI-")[0]
	peer4 := wantSets(t, goodSets, "web", web.IP, "NETPOL4-P-")[0]

	labels["default/web"] = "app=nope"
	writeManifest(t, dir, "10-pods.yaml", podsYAML(labels))
	execIn(t, n, "ipset", "del", group4, db.IP)
	if inForce, proven := onceProven(t, n, dir); inForce || !proven {
		t.Fatalf("after a label change: in force %v, rules proven %v; want false, true", inForce, proven)
	}
	sets := nodeSets(t, n)
	if slices.Contains(sets[peer4], web.IP) {
		t.Errorf("peer set %s still holds %s after its label changed: %v", peer4, web.IP, sets[peer4])
	}
	if !slices.Equal(sets[group4], goodSets[group4]) {
		t.Errorf("group set %s holds %v, want %v", group4, sets[group4], goodSets[group4])
	}
	if got := enforcedRules(t, n); got != good {
		t.Errorf("a label change changed the rules:\n%s\nwant:\n%s", got, good)
	}
	expectMatrix(t, "web relabelled", pods, pods, "default/web>default/other", "default/db>default/web",
		"default/db>default/other", "default/other>default/web")

	labels["default/web"] = "app=web"
	writeManifest(t, dir, "10-pods.yaml", podsYAML(labels))
	if inForce, proven := onceProven(t, n, dir); inForce || !proven {
		t.Fatalf("after the label changed back: in force %v, rules proven %v; want false, true", inForce, proven)
	}
	if got := nodeSets(t, n); !maps.EqualFunc(got, goodSets, slices.Equal) {
		t.Errorf("sets after the label changed back:\n%v\nwant:\n%v", got, goodSets)
	}
	if !onceInForce(t, n, dir) {
		t.Error("the run after did not find its rules in force")
	}
}
