package plugin

import (
	"errors"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/policy"
)

// Add handles CNI ADD: record the pod, put its addresses into its sets, and
// return prevResult unchanged.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	return p.locked(args, "ADD", true, func(inv *invocation) error { return inv.add(args) })
}

func (inv *invocation) add(args *skel.CmdArgs) error {
	pod, err := conf.ParsePodArgs(args.Args)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	att := &policy.Attachment{
		ContainerID: args.ContainerID,
		IfName:      args.IfName,
		Namespace:   pod.Namespace,
		Name:        pod.Name,
		IPs:         resultIPs(inv.conf.PrevResult, args.IfName),
	}
	if err := inv.store.WriteAttachment(att); err != nil {
		return types.NewError(types.ErrIOFailure, "record pod", err.Error())
	}
	idx, err := inv.readIndexFor(att.PodKey())
	if err != nil {
		return err
	}
	if idx == nil {
		// The agent has never synced here: install the fixed chains with
		// every recorded pod, this one included, in the DENY set.
		if err := inv.bootstrap(); err != nil {
			return err
		}
	}
	entries := idx.Entries(att)
	if err := inv.kernel.AddEntries(inv.ctx, entries); err != nil {
		return kernelError("add pod to sets", err)
	}
	inv.log.Info("pod added", "pod", att.PodKey(), "ips", att.IPs, "entries", len(entries),
		"known", idx.Known(att), "failClosed", !idx.Known(att) && idx.IsIsolated(att.Namespace),
		"reason", addReason(idx, att))
	return inv.printResult()
}

// printResult writes prevResult, unchanged, at the config's cniVersion.
func (inv *invocation) printResult() error {
	r, err := inv.conf.NetConf.PrevResult.GetAsVersion(inv.conf.CNIVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, "prevResult", err.Error())
	}
	return r.PrintTo(inv.stdout)
}

func addReason(idx *policy.Index, att *policy.Attachment) string {
	switch {
	case idx == nil:
		return "no snapshot yet: denied until the agent syncs"
	case idx.Known(att):
		return "pod known to the snapshot"
	case idx.IsIsolated(att.Namespace):
		return "pod not in the snapshot and its namespace has policies: denied until the agent knows it"
	default:
		return "pod not in the snapshot; its namespace has no policy: unrestricted"
	}
}

// readIndex loads the agent's index; nil when there is none yet.
func (inv *invocation) readIndex() (*policy.Index, error) {
	idx, err := inv.store.ReadIndex()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, "read index", err.Error())
	}
	return idx, nil
}

// readIndexFor is readIndex with the memberships of one pod only.
func (inv *invocation) readIndexFor(podKey string) (*policy.Index, error) {
	idx, err := inv.store.ReadIndexFor(podKey)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, "read index", err.Error())
	}
	return idx, nil
}

// bootstrap installs the chains and sets of a node whose agent never synced.
func (inv *invocation) bootstrap() error {
	atts, err := inv.store.Attachments()
	if err != nil {
		return types.NewError(types.ErrIOFailure, "read pod records", err.Error())
	}
	compiled, err := policy.CompileUnknown(atts)
	if err != nil {
		return kernelError("compile skeleton", err)
	}
	if err := inv.kernel.Apply(inv.ctx, compiled.Rulesets, nil); err != nil {
		return kernelError("install skeleton", err)
	}
	return nil
}

// resultIPs returns the addresses prevResult assigned to the pod's interface
// (an address with no interface index is taken as the pod's); an unspecified
// address (0.0.0.0, ::) is no pod's and is left out.
func resultIPs(r *types100.Result, ifName string) []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, ipc := range r.IPs {
		if ipc.Interface != nil {
			i := *ipc.Interface
			if i < 0 || i >= len(r.Interfaces) || r.Interfaces[i].Name != ifName || r.Interfaces[i].Sandbox == "" {
				continue
			}
		}
		ip := ipc.Address.IP
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		if ip != nil && !ip.IsUnspecified() {
			out = append(out, ip.String())
		}
	}
	return out
}
