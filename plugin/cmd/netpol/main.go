// Command netpol is the CNI plugin; see package plugin.
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/plugin"
)

func main() { os.Exit(run()) }

func run() int {
	versions := version.PluginSupports(conf.SupportedVersions()...)
	if err := skel.PluginMainFuncsWithError(plugin.Default().Funcs(), versions, "netpol: Kubernetes NetworkPolicy for bridge and flannel networks"); err != nil {
		_ = err.Print()
		return 1
	}
	return 0
}
