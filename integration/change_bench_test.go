package integration

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/agent/health"
	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// bnTrace collects the commands an ipt.Runner started during one sync.
type bnTrace struct {
	mu   sync.Mutex
	took map[string]time.Duration
}

func (t *bnTrace) add(cmd string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.took == nil {
		t.took = map[string]time.Duration{}
	}
	t.took[cmd] += d
}

// reset returns what was collected and starts over.
func (t *bnTrace) reset() map[string]time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.took
	t.took = nil
	return out
}

// bnLabelFlip returns snap with the label version of pod i flipped to v1,
// or to v2 when it is v1 (snap is not modified: the agent keeps it).
func bnLabelFlip(snap *policy.Snapshot, i int) *policy.Snapshot {
	out := *snap
	out.Pods = slices.Clone(snap.Pods)
	p := &out.Pods[i]
	p.Labels = maps.Clone(p.Labels)
	if p.Labels["version"] == "v1" {
		p.Labels["version"] = "v2"
	} else {
		p.Labels["version"] = "v1"
	}
	return &out
}

// bnPolicyFlip returns snap with policy i's first ingress rule given a
// port 7000+k when it has none, or its ports removed when it has some.
func bnPolicyFlip(snap *policy.Snapshot, i, k int) *policy.Snapshot {
	out := *snap
	out.Policies = slices.Clone(snap.Policies)
	np := out.Policies[i].DeepCopy()
	if len(np.Spec.Ingress[0].Ports) == 0 {
		np.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{bnTCPPort(int32(7000 + k))}
	} else {
		np.Spec.Ingress[0].Ports = nil
	}
	out.Policies[i] = *np
	return &out
}

// bnChangeTargets finds, in the large cluster, a pod of another node whose
// version flip changes the members of some set (a peer of a policy that
// selects local pods), and a policy with an ingress rule that selects a
// local pod: the allow-same-namespace policy of a local pod's namespace.
func bnChangeTargets(b *testing.B, snap *policy.Snapshot, atts []policy.Attachment) (pod, pol int) {
	b.Helper()
	base, err := policy.Compile(snap, atts)
	if err != nil {
		b.Fatal(err)
	}
	members := func(c *policy.Compiled) string {
		var sb strings.Builder
		for _, rs := range c.Rulesets {
			for _, set := range rs.Sets {
				fmt.Fprintln(&sb, set.Name, set.Members)
			}
		}
		return sb.String()
	}
	local := map[string]bool{}
	for i := range snap.Pods {
		if snap.Pods[i].Node == bnNodeName {
			local[snap.Pods[i].Namespace] = true
		}
	}
	pod, pol = -1, -1
	tried := 0
	for i := range snap.Pods {
		p := &snap.Pods[i]
		if !local[p.Namespace] || p.Node == bnNodeName || p.Labels["tier"] == "" {
			continue
		}
		if tried++; tried > 200 {
			break
		}
		next, err := policy.Compile(bnLabelFlip(snap, i), atts)
		if err != nil {
			b.Fatal(err)
		}
		if members(next) != members(base) {
			pod = i
			break
		}
	}
	for i := range snap.Policies {
		np := &snap.Policies[i]
		if local[np.Namespace] && strings.HasPrefix(np.Name, "allow-same-namespace") && len(np.Spec.Ingress) > 0 {
			pol = i
			break
		}
	}
	if pod < 0 || pol < 0 {
		b.Fatal("no remote pod whose labels matter, or no allow-same-namespace policy, in a namespace with local pods")
	}
	return pod, pol
}

// bnChangeStats are the timings of one kind of change.
type bnChangeStats struct {
	name   string
	full   bool              // synced with Agent.FullSync (the baseline)
	took   []time.Duration   // Agent.Sync, end to end
	kernel []time.Duration   // until the kernel held it (took less the writes)
	phases [][]time.Duration // compile, apply, write, held
	fast   int               // syncs that went the incremental way
	cmds   map[string][]time.Duration
	count  map[string]int
}

func (s *bnChangeStats) record(took time.Duration, res health.SyncResult, cmds map[string]time.Duration) {
	s.took = append(s.took, took)
	s.kernel = append(s.kernel, took-res.Write)
	s.phases = append(s.phases, []time.Duration{res.Compile, res.Apply, res.Write, res.Held})
	if res.Fast {
		s.fast++
	}
	if s.cmds == nil {
		s.cmds, s.count = map[string][]time.Duration{}, map[string]int{}
	}
	for c, d := range cmds {
		s.cmds[c] = append(s.cmds[c], d)
		s.count[c]++
	}
}

// phase is the median of phase j.
func (s *bnChangeStats) phase(j int) time.Duration {
	var ds []time.Duration
	for _, p := range s.phases {
		ds = append(ds, p[j])
	}
	return bnMedian(ds)
}

// BenchmarkAgentChange is a running agent's answer to one change on the
// 10,000-pod, 1,000-policy cluster (100 local pods recorded by CNI ADD):
// Agent.Sync of a snapshot that differs from the last synced one by one
// pod's labels (a pod of another node whose labels a peer of a local pod's
// policy matches) or by one policy (a port added to or removed from a rule
// of a policy of a local pod: its chains change), in process, in the
// node's network namespace. "to kernel" is from the call until the kernel
// holds the change (the sync less its index and snapshot writes). The
// source's own cost (decoding manifests, informer events) is not in it.
// Each change is timed with its baseline right after it: the same change
// synced with Agent.FullSync (compile everything, Apply through the
// Runner's memory: the agent before the incremental path). Targets (issue
// 10): label ≤ 20 ms, policy ≤ 50 ms to kernel (p50; p99 ≤ 3 × p50).
func BenchmarkAgentChange(b *testing.B) {
	bnRequireRoot(b)
	const changes = 24
	cluster := bnLargeCluster()
	n := node.New(b, node.Options{Name: bnNodeName})
	st := state.New(n.DataDir)
	atts := cluster.Attachments(len(cluster.LocalPods()))
	for _, a := range atts {
		if err := st.WriteAttachment(&a); err != nil {
			b.Fatal(err)
		}
	}
	snap := cluster.Snapshot()
	podI, polI := bnChangeTargets(b, snap, atts)
	trace := &bnTrace{}
	kinds := []*bnChangeStats{{name: "label"}, {name: "label", full: true}, {name: "policy"}, {name: "policy", full: true},
		{name: "unchanged"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error {
		r := &ipt.Runner{Timeout: time.Minute, Trace: trace.add}
		a := &agent.Agent{Store: st, Kernel: r, Log: slog.New(slog.DiscardHandler), LockTimeout: time.Minute}
		if _, err := a.Sync(ctx, snap); err != nil {
			return fmt.Errorf("first sync: %w", err)
		}
		trace.reset()
		for i := range changes {
			for _, k := range kinds {
				next := snap
				switch k.name {
				case "label":
					next = bnLabelFlip(snap, podI)
				case "policy":
					next = bnPolicyFlip(snap, polI, i)
				}
				a.FullSync = k.full
				start := time.Now()
				res, err := a.Sync(ctx, next)
				took := time.Since(start)
				if err != nil {
					return fmt.Errorf("%s change %d: %w", k.name, i, err)
				}
				k.record(took, res, trace.reset())
				snap = next
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var log bnLog
	log.add("Agent.Sync of one change, %d of each kind, ms (min median max; max ≈ p99 at this count); phases: medians", changes)
	log.add("%-16s %-20s   %-20s  %7s %5s %5s %5s  %s", "change", "to kernel", "whole sync", "compile", "apply", "write", "held", "incremental")
	for _, k := range kinds {
		log.add("%-16s %-20s   %-20s  %7.1f %5.1f %5.1f %5.1f  %d/%d", bnKindName(k), bnSpread(k.kernel), bnSpread(k.took),
			bnMs(k.phase(0)), bnMs(k.phase(1)), bnMs(k.phase(2)), bnMs(k.phase(3)), k.fast, len(k.took))
		cmds := slices.Collect(maps.Keys(k.cmds))
		sort.Strings(cmds)
		for _, c := range cmds {
			log.add("%-16s   %-26s %3d×  %.1f ms", "", c, k.count[c], bnMs(bnMedian(k.cmds[c])))
		}
	}
	for i, k := range kinds {
		if i > 0 {
			log = nil
		}
		bnReport(b, "change="+strings.ReplaceAll(bnKindName(k), " ", "-"), log,
			bnMetric{bnMs(bnMedian(k.kernel)), "ms/change"}, bnMetric{bnMs(slices.Max(k.kernel)), "max_ms"})
	}
}

func bnKindName(k *bnChangeStats) string {
	if k.full {
		return k.name + " (full)"
	}
	return k.name
}

func bnTCPPort(p int32) networkingv1.NetworkPolicyPort {
	tcp, port := corev1.ProtocolTCP, intstr.FromInt32(p)
	return networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &port}
}
