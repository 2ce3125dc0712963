package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/netpol/netpol/agent/cniconf"
	"github.com/netpol/netpol/conf"
)

// installCNI implements `netpol-agent install-cni`: copy the plugin into
// the CNI bin dir and chain it into the runtime's configuration.
func installCNI(args []string) int {
	fs := flag.NewFlagSet("netpol-agent install-cni", flag.ContinueOnError)
	confDir := fs.String("cni-conf-dir", "/etc/cni/net.d", "the runtime's CNI configuration directory")
	binDir := fs.String("cni-bin-dir", "/opt/cni/bin", "the runtime's CNI plugin directory")
	plugin := fs.String("plugin", "/usr/local/bin/netpol", `the netpol plugin binary to copy into --cni-bin-dir ("" copies nothing)`)
	dataDir := fs.String("data-dir", conf.DefaultDataDir, "the plugin's dataDir")
	mode := fs.String("iptables-mode", "auto", "the plugin's iptablesMode: auto, nft or legacy")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "netpol-agent install-cni: bad arguments")
		return 2
	}
	res, err := cniconf.Install(cniconf.Options{ConfDir: *confDir, BinDir: *binDir, Plugin: *plugin,
		Entry: cniconf.Entry(*dataDir, *mode)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent install-cni:", err)
		return 1
	}
	fmt.Printf("netpol chained into %s (changed: %v, plugin copied: %v)\n", res.File, res.Changed, res.Copied)
	return 0
}

// uninstallCNI implements `netpol-agent uninstall-cni`: put the runtime's
// original configuration back.
func uninstallCNI(args []string) int {
	fs := flag.NewFlagSet("netpol-agent uninstall-cni", flag.ContinueOnError)
	confDir := fs.String("cni-conf-dir", "/etc/cni/net.d", "the runtime's CNI configuration directory")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "netpol-agent uninstall-cni: bad arguments")
		return 2
	}
	restored, err := cniconf.Uninstall(*confDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpol-agent uninstall-cni:", err)
		return 1
	}
	fmt.Printf("restored %v\n", restored)
	return 0
}
