package plugin

import (
	"errors"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// errPluginNotAvailable is CNI's error 50: "The plugin is not available
// (i.e. cannot service ADD requests)", returned by STATUS.
const errPluginNotAvailable uint = 50

// bridgeNFCall is the per-namespace switch that sends bridged IPv4 traffic
// through iptables; without it the physdev path never sees a packet.
const bridgeNFCall = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// bridgeNFCall6 is the same switch for IPv6 (ip6tables).
const bridgeNFCall6 = "/proc/sys/net/bridge/bridge-nf-call-ip6tables"

// bridgeSysctlOn fails with code 50 unless the br_netfilter switch at path
// is 1 in this network namespace.
func bridgeSysctlOn(path string) error {
	v, err := os.ReadFile(path)
	if err != nil {
		return types.NewError(errPluginNotAvailable,
			"netpol: br_netfilter is not loaded ("+path+" missing): bridged traffic would bypass policy", err.Error())
	}
	if s := strings.TrimSpace(string(v)); s != "1" {
		name := strings.ReplaceAll(strings.TrimPrefix(path, "/proc/sys/"), "/", ".")
		return types.NewError(errPluginNotAvailable,
			"netpol: "+name+" is "+s+" in this network namespace; set it to 1", "")
	}
	return nil
}

// Status handles CNI STATUS: netpol can enforce policy only when bridged
// traffic reaches iptables and the data directory is usable.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	inv, err := p.begin(args, "STATUS", false)
	var cniErr *types.Error
	if errors.As(err, &cniErr) && cniErr.Code == types.ErrIOFailure {
		return types.NewError(errPluginNotAvailable, "netpol: data dir unusable", cniErr.Error())
	}
	if err != nil {
		return err
	}
	defer inv.close()
	for _, sysctl := range []string{bridgeNFCall, bridgeNFCall6} {
		if err := bridgeSysctlOn(sysctl); err != nil {
			return err
		}
	}
	if err := inv.store.Probe(); err != nil {
		return types.NewError(errPluginNotAvailable, "netpol: data dir "+inv.conf.DataDir+" is not writable", err.Error())
	}
	return nil
}
