package plugin

import (
	"errors"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

// errPluginNotAvailable is CNI's error 50: "The plugin is not available
// (i.e. cannot service ADD requests)", returned by STATUS, and by ADD when
// bridged traffic would bypass iptables.
const errPluginNotAvailable uint = 50

// bridgeNFOn fails with code 50 unless bridged traffic of every family in
// fams reaches iptables in this network namespace (see
// ipt.CheckBridgeNFCall): one file read per family.
func bridgeNFOn(fams ...ipt.Family) error {
	for _, f := range fams {
		if err := ipt.CheckBridgeNFCall(f); err != nil {
			return types.NewError(errPluginNotAvailable, "netpol: "+err.Error(), "")
		}
	}
	return nil
}

// podFamilies returns the address families of ips, IPv4 first.
func podFamilies(ips []string) []ipt.Family {
	var out []ipt.Family
	for _, f := range ipt.Families {
		for _, ip := range ips {
			if fam, ok := node.AddressFamily(ip); ok && fam == f {
				out = append(out, f)
				break
			}
		}
	}
	return out
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
	if err := bridgeNFOn(ipt.Families...); err != nil {
		return err
	}
	if err := inv.store.Probe(); err != nil {
		return types.NewError(errPluginNotAvailable, "netpol: data dir "+inv.conf.DataDir+" is not writable", err.Error())
	}
	return nil
}
