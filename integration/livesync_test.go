package integration

// A running agent's syncs: the incremental path against a full sync, and a
// CNI ADD that lands between a sync's compile and its commit.

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/agent/manifest"
	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/policy/testsnap"
	"github.com/netpol/netpol/state"
)

// inNodeAgent runs f with an in-process agent on the node's data dir, on a
// thread inside the node's network namespace (every command and netlink
// request of the agent starts from it).
func inNodeAgent(t *testing.T, n *node.Node, f func(a *agent.Agent) error) {
	t.Helper()
	err := ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error {
		a := &agent.Agent{Store: state.New(n.DataDir), Kernel: &ipt.Runner{Timeout: time.Minute},
			Log: slog.New(slog.DiscardHandler), LockTimeout: time.Minute}
		return f(a)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// liveKernelState is the node's filter table and sets as text that two nodes
// holding the same state print alike: comment lines, counters, and a set's
// hash size and random initval left out; sorted.
func liveKernelState(t *testing.T, n *node.Node) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(execIn(t, n, "iptables-save", "-t", "filter")+execIn(t, n, "ip6tables-save", "-t", "filter"), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, ":") {
			l = strings.Fields(l)[0]
		}
		lines = append(lines, l)
	}
	for _, l := range strings.Split(execIn(t, n, "ipset", "save"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "create" {
			l = strings.Join(f[:min(len(f), 5)], " ") // create NAME TYPE family F
		}
		if l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestLiveSyncIsFullSync: a running agent that takes a chain of changes the
// incremental way (labels of pods of other nodes and of this node, a
// policy's ports, a new peer, a policy deleted) leaves the kernel exactly
// as a fresh agent's full sync of the last snapshot leaves another node
// with the same pod records (iptables-save and ipset save compared).
func TestLiveSyncIsFullSync(t *testing.T) {
	c := testsnap.Generate(testsnap.Config{Seed: 3, Node: bnNodeName, Nodes: 10, Namespaces: 20,
		Pods: 1500, LocalPods: 30, Policies: 200})
	snap, atts := c.Snapshot(), c.Attachments(30)
	live, fresh := newNode(t, node.Options{Name: bnNodeName}), newNode(t, node.Options{Name: bnNodeName})
	for _, n := range []*node.Node{live, fresh} {
		st := state.New(n.DataDir)
		for _, a := range atts {
			if err := st.WriteAttachment(&a); err != nil {
				t.Fatal(err)
			}
		}
	}
	changes := liveChanges(t, snap, atts)
	var last *policy.Snapshot
	inNodeAgent(t, live, func(a *agent.Agent) error {
		ctx := timeoutCtx(t, 5*time.Minute)
		if _, err := a.Sync(ctx, snap); err != nil {
			return err
		}
		last = snap
		for _, ch := range changes {
			next := ch.apply(last)
			res, err := a.Sync(ctx, next)
			if err != nil {
				return fmt.Errorf("%s: %w", ch.name, err)
			}
			if !res.Fast {
				t.Errorf("%s: synced whole, not incrementally", ch.name)
			}
			last = next
		}
		return nil
	})
	inNodeAgent(t, fresh, func(a *agent.Agent) error {
		_, err := a.Sync(timeoutCtx(t, 5*time.Minute), last)
		return err
	})
	got, want := liveKernelState(t, live), liveKernelState(t, fresh)
	if got != want {
		g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
		var only []string
		for _, l := range g {
			if !slices.Contains(w, l) {
				only = append(only, "+ "+l)
			}
		}
		for _, l := range w {
			if !slices.Contains(g, l) {
				only = append(only, "- "+l)
			}
		}
		t.Errorf("after %d incremental syncs the kernel differs from a full sync (- full, + incremental):\n%s",
			len(changes), strings.Join(only[:min(len(only), 40)], "\n"))
	}
}

// liveChange is one change of a snapshot.
type liveChange struct {
	name  string
	apply func(*policy.Snapshot) *policy.Snapshot
}

// liveChanges are the changes TestLiveSyncIsFullSync makes, in order:
// each changes the members of some set or some rule (checked with Compile).
func liveChanges(t *testing.T, snap *policy.Snapshot, atts []policy.Attachment) []liveChange {
	t.Helper()
	state := func(s *policy.Snapshot) string {
		c, err := policy.Compile(s, atts)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(c.Rulesets)
	}
	base := state(snap)
	var remote, local []int
	for i := range snap.Pods {
		p := &snap.Pods[i]
		if snap.IsLocal(p) && len(local) < 2 || !snap.IsLocal(p) && p.Labels["tier"] != "" && len(remote) < 3 {
			if state(bnLabelFlip(snap, i)) == base {
				continue
			}
			if snap.IsLocal(p) {
				local = append(local, i)
			} else {
				remote = append(remote, i)
			}
		}
	}
	if len(local) < 2 || len(remote) < 3 {
		t.Fatalf("found only %d remote and %d local pods whose labels matter", len(remote), len(local))
	}
	pol := slices.IndexFunc(snap.Policies, func(np networkingv1.NetworkPolicy) bool {
		return strings.HasPrefix(np.Name, "allow-same-namespace") && len(np.Spec.Ingress) > 0 && state(bnPolicyFlip(snap, slices.IndexFunc(snap.Policies, func(x networkingv1.NetworkPolicy) bool { return x.Namespace == np.Namespace && x.Name == np.Name }), 1)) != base
	})
	if pol < 0 {
		t.Fatal("no allow-same-namespace policy of a local pod")
	}
	flip := func(what string, i int) liveChange {
		return liveChange{fmt.Sprintf("labels of %s pod %d", what, i), func(s *policy.Snapshot) *policy.Snapshot { return bnLabelFlip(s, i) }}
	}
	out := []liveChange{flip("remote", remote[0]), flip("remote", remote[1]), flip("remote", remote[2]),
		flip("remote", remote[0]), flip("local", local[0]), flip("local", local[1]), flip("local", local[0])}
	return append(out,
		liveChange{"a policy's ports", func(s *policy.Snapshot) *policy.Snapshot { return bnPolicyFlip(s, pol, 1) }},
		liveChange{"a policy's ports again", func(s *policy.Snapshot) *policy.Snapshot { return bnPolicyFlip(s, pol, 2) }},
		liveChange{"a new peer", func(s *policy.Snapshot) *policy.Snapshot {
			out := *s
			out.Policies = slices.Clone(s.Policies)
			np := out.Policies[pol].DeepCopy()
			np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"version": "v3"}}})
			out.Policies[pol] = *np
			return &out
		}},
		liveChange{"the policy deleted", func(s *policy.Snapshot) *policy.Snapshot {
			out := *s
			out.Policies = slices.Delete(slices.Clone(s.Policies), pol, pol+1)
			return &out
		}},
	)
}

// TestAddBetweenCompileAndCommit: a pod ADDed (the real plugin, through
// libcni) after a sync compiled a snapshot that has the pod but no record
// of it, and before the sync commits, ends in its group set, out of DENY,
// and isolated as its policy says: the commit reads the records again and
// patches the result with the new one.
func TestAddBetweenCompileAndCommit(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	pods := addServingPods(t, n, "default/db1", "default/web")
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{"default/db1": "app=db", "default/web": "app=web"}))
	before, err := manifest.Load(dir, n.Name)
	if err != nil {
		t.Fatal(err)
	}
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{"default/db1": "app=db", "default/web": "app=web",
		"default/db2": "app=db"}))
	after, err := manifest.Load(dir, n.Name)
	if err != nil {
		t.Fatal(err)
	}
	var db2 *node.Pod
	inNodeAgent(t, n, func(a *agent.Agent) error {
		ctx := timeoutCtx(t, 2*time.Minute)
		if _, err := a.Sync(ctx, before); err != nil {
			return err
		}
		a.BeforeCommit = func() {
			a.BeforeCommit = nil
			db2 = addServingPods(t, n, "default/db2")[0]
		}
		_, err := a.Sync(ctx, after)
		return err
	})
	sets := nodeSets(t, n)
	wantSets(t, sets, "db2", db2.IP, "NETPOL4-GI-")
	expectMatrix(t, "after the ADD between compile and commit", []*node.Pod{pods[1], pods[0]}, []*node.Pod{db2},
		"default/web>default/db2")
}
