package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/netpol/netpol/agent/nflog"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// DropLogOptions say where RunDropLog reads drops and writes their records.
type DropLogOptions struct {
	Group    uint16    // the NFLOG group of the drop rules (policy.DropLog.Group)
	RecvBuf  int       // the netlink socket's receive buffer in bytes; 0: 1 MiB
	MaxBytes int64     // the drop log rotates at this size
	Keep     int       // rotated files kept
	Echo     io.Writer // also write every record here, when set
}

// dropView is what turning a logged packet into a drop record needs from
// the last successful sync: whose addresses are whose, and which policies
// each group hash stands for (those of the sync before too, for packets
// logged by the rules it replaced).
type dropView struct {
	groups policy.GroupPolicies
	// pods is built from snap and atts on the first drop that needs it, not
	// on every sync (10,000 pods are a few milliseconds).
	snap     *policy.Snapshot
	atts     []policy.Attachment
	podsOnce sync.Once
	pods     map[netip.Addr]string
}

// podOf returns the pod whose address a is ("" when none is known).
func (v *dropView) podOf(a netip.Addr) string {
	v.podsOnce.Do(v.buildPods)
	return v.pods[a.Unmap()]
}

// dropViews holds the view of the last sync; Agent keeps one.
type dropViews struct{ p atomic.Pointer[dropView] }

// update replaces the view after a sync of snap with atts.
func (v *dropViews) update(snap *policy.Snapshot, atts []policy.Attachment, groups policy.GroupPolicies) {
	next := &dropView{snap: snap, atts: atts, groups: maps.Clone(groups)}
	if prev := v.p.Load(); prev != nil {
		for h, ps := range prev.groups {
			if _, ok := next.groups[h]; !ok {
				next.groups[h] = ps
			}
		}
	}
	v.p.Store(next)
}

// buildPods fills v.pods: the addresses of the snapshot's pods of other
// nodes and of the pods CNI ADD recorded here.
func (v *dropView) buildPods() {
	v.pods = map[netip.Addr]string{}
	if v.snap == nil {
		return // no sync yet: no pod known
	}
	for i := range v.snap.Pods {
		p := &v.snap.Pods[i]
		if v.snap.IsLocal(p) {
			continue // its addresses are those CNI ADD recorded
		}
		for _, ip := range p.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				v.pods[a.Unmap()] = p.Key()
			}
		}
	}
	for _, att := range policy.OwnAddresses(v.atts) {
		for _, ip := range att.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				v.pods[a.Unmap()] = att.PodKey()
			}
		}
	}
}

// RunDropLog reads the NFLOG group of the drop rules in the agent's network
// namespace and writes one record per packet to the drop log (and Echo),
// until ctx ends. Only one reader can bind a group: a second agent, or
// another tool on the same group, makes it fail at once.
func (a *Agent) RunDropLog(ctx context.Context, opts DropLogOptions) error {
	w, err := a.Store.OpenDropLog(opts.MaxBytes, opts.Keep)
	if err != nil {
		return fmt.Errorf("drop log: %w", err)
	}
	defer w.Close()
	conn, err := nflog.Open(opts.Group, opts.RecvBuf)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var echoMu sync.Mutex
	var reported uint64
	for {
		err := conn.Read(func(p nflog.Packet) {
			rec, reason, ns, ok := a.dropRecord(p)
			if !ok {
				return
			}
			if err := w.Write(rec); err != nil {
				a.Log.Error("write drop record", "err", err)
			}
			if opts.Echo != nil {
				echoMu.Lock()
				_ = json.NewEncoder(opts.Echo).Encode(rec)
				echoMu.Unlock()
			}
			if a.DropObserver != nil {
				a.DropObserver.ObserveDrop(rec.Direction, reason, ns)
			}
		})
		if lost, _ := conn.Lost(); lost > reported {
			a.Log.Warn("drop records lost: the kernel could not deliver them (NFLOG socket buffer full)", "lost", lost-reported)
			if a.DropObserver != nil {
				a.DropObserver.ObserveLost(lost - reported)
			}
			reported = lost
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("read NFLOG group %d: %w", opts.Group, err)
		}
	}
}

// dropRecord turns a logged packet into a record, its reason code and the
// namespace of the pod whose policy dropped it; false for a packet of
// another tool's rules.
func (a *Agent) dropRecord(p nflog.Packet) (rec *state.DropRecord, reason, namespace string, ok bool) {
	cause, err := policy.ParseDropPrefix(p.Prefix)
	if err != nil {
		a.Log.Debug("NFLOG message not from a netpol rule", "err", err)
		return nil, "", "", false
	}
	flow, err := nflog.Decode(p.Payload)
	if err != nil {
		a.Log.Debug("NFLOG packet unreadable", "err", err)
		return nil, "", "", false
	}
	view := a.drops.p.Load()
	if view == nil {
		view = &dropView{}
	}
	rec = &state.DropRecord{
		Time: p.Time.UTC(), Direction: cause.Direction.String(), Path: "routed", Protocol: flow.Protocol,
		Src:     state.DropEndpoint{IP: flow.Src.String(), Port: int(flow.SrcPort), Pod: view.podOf(flow.Src)},
		Dst:     state.DropEndpoint{IP: flow.Dst.String(), Port: int(flow.DstPort), Pod: view.podOf(flow.Dst)},
		Verdict: cause.Verdict, Reason: cause.ReasonText(), Policies: []string{},
	}
	if p.Bridged {
		rec.Path = "bridged"
	}
	if ps, ok := view.groups[cause.Group]; ok {
		rec.Policies = ps
	}
	isolated := rec.Dst.Pod
	if cause.Direction == policy.Egress {
		isolated = rec.Src.Pod
	}
	ns, _, _ := strings.Cut(isolated, "/")
	return rec, cause.Reason, ns, true
}
