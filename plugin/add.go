package plugin

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/policy/node"
	"github.com/netpol/netpol/state"
)

// Add handles CNI ADD: record the pod, put its addresses into its sets, and
// return prevResult unchanged. It fails, recording and installing nothing,
// when bridged traffic of one of the pod's address families bypasses
// iptables in the namespace ADD runs in (br_netfilter's
// bridge-nf-call-iptables or -ip6tables is not 1).
func (p *Plugin) Add(args *skel.CmdArgs) error {
	return p.locked(args, "ADD", true, func(inv *invocation) error { return inv.add(args) })
}

func (inv *invocation) add(args *skel.CmdArgs) error {
	pod, err := conf.ParsePodArgs(args.Args)
	if err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	ips, err := resultIPs(inv.conf.PrevResult, args.IfName)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "netpol: "+err.Error(), "")
	}
	if err := state.CheckIDs(args.ContainerID, args.IfName); err != nil {
		// Invalid input, refused before anything is written: the record
		// would have no file name.
		return types.NewError(types.ErrInvalidEnvironmentVariables, "netpol: "+err.Error(), "")
	}
	if err := bridgeNFOn(podFamilies(ips)...); err != nil {
		return err // the pod's bridged traffic would bypass every rule
	}
	att := &node.Attachment{
		ContainerID: args.ContainerID,
		IfName:      args.IfName,
		Namespace:   pod.Namespace,
		Name:        pod.Name,
		IPs:         ips,
		Created:     time.Now().UTC(),
		Netns:       args.Netns,
	}
	if err := inv.store.WriteAttachment(att); err != nil {
		return types.NewError(types.ErrIOFailure, "record pod", err.Error())
	}
	idx, err := inv.readIndex(att.PodKey())
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
	v := idx.Admit(att)
	inv.log.Info("pod added", "pod", att.PodKey(), "ips", att.IPs, "entries", len(entries),
		"known", v.Reason == node.KnownPod, "failClosed", v.Action() == node.Deny,
		"verdict", v.Action().String(), "reason", v.String(),
		"waited", inv.waited, "took", time.Since(inv.start))
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

// readIndex loads the agent's index, with the memberships of pod podKey
// ("namespace/name") only, or of every pod when podKey is ""; nil when there
// is none yet.
func (inv *invocation) readIndex(podKey string) (*node.Index, error) {
	var idx *node.Index
	var err error
	if podKey == "" {
		idx, err = inv.store.ReadIndex()
	} else {
		idx, err = inv.store.ReadIndexFor(podKey)
	}
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
	atts, err := inv.attachments()
	if err != nil {
		return err
	}
	skeleton, err := node.Skeleton(atts, dropLog(inv.conf))
	if err != nil {
		return kernelError("compile skeleton", err)
	}
	if err := inv.kernel.Apply(inv.ctx, skeleton); err != nil {
		return kernelError("install skeleton", err)
	}
	return nil
}

// resultIPs returns the addresses prevResult assigned to the pod's interface
// ifName. An address with no interface index is taken as the pod's (the
// IPAM result of a chain that lists no interfaces); one whose index names
// another interface, one outside the sandbox, or no interface at all is
// not. No usable address is an error saying why: a pod netpol cannot put
// in any set is a pod no rule would ever isolate.
//
// An IPv4-mapped IPv6 address ("::ffff:10.0.0.1") is normalised to its
// IPv4 form, not refused: it is what the pod has, since netlink (and so the
// bridge plugin) configures such an address as IPv4 and the runtime reports
// it to Kubernetes in IPv4 form. An address listed twice is returned once.
func resultIPs(r *types100.Result, ifName string) ([]string, error) {
	if r == nil || len(r.IPs) == 0 {
		return nil, errors.New("prevResult.ips is empty: the pod has no address netpol could put in its sets")
	}
	var out, skipped []string
	for n, ipc := range r.IPs {
		if why := notThePods(r, ipc, ifName); why != "" {
			skipped = append(skipped, fmt.Sprintf("ips[%d] %s %s", n, ipc.Address.String(), why))
			continue
		}
		ip := ipc.Address.IP
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		if !slices.Contains(out, ip.String()) {
			out = append(out, ip.String())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("prevResult gives interface %q in the sandbox no usable address: %s",
			ifName, strings.Join(skipped, "; "))
	}
	return out, nil
}

// notThePods says why ipc is not an address of the pod's interface ifName
// ("" when it is).
func notThePods(r *types100.Result, ipc *types100.IPConfig, ifName string) string {
	ip := ipc.Address.IP
	if ip == nil || ip.IsUnspecified() {
		return "is unspecified"
	}
	if ipc.Interface == nil {
		return ""
	}
	i := *ipc.Interface
	switch {
	case i < 0 || i >= len(r.Interfaces):
		return fmt.Sprintf("names interface %d, but prevResult.interfaces has %d", i, len(r.Interfaces))
	case r.Interfaces[i].Sandbox == "":
		return fmt.Sprintf("is on interface %d %q, which is not in the sandbox", i, r.Interfaces[i].Name)
	case r.Interfaces[i].Name != ifName:
		return fmt.Sprintf("is on interface %d %q, not %q", i, r.Interfaces[i].Name, ifName)
	}
	return ""
}

// dropLog is the netconf's drop logging over the defaults.
func dropLog(nc *conf.NetConf) node.DropLog {
	dl := node.DefaultDropLog()
	if nc.DropLog.Group != nil {
		dl.Group = *nc.DropLog.Group
	}
	if nc.DropLog.Rate != nil {
		dl.Rate = *nc.DropLog.Rate
	}
	if nc.DropLog.Burst != nil {
		dl.Burst = *nc.DropLog.Burst
	}
	return dl
}
