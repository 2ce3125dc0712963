package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
)

// InvokePlugin runs a single plugin of the node's chain, picked by its type
// (e.g. "netpol"), for command "ADD", "DEL" or "CHECK", inside the node
// namespace, with the config libcni would give it in the chain (network
// name and cniVersion injected) and prevResult injected unless it is nil.
// Unlike the *PodArgs calls it bypasses the rest of the chain and libcni's
// cache, so a test can run ADD twice for one container, or DEL with and
// without a prevResult, against that plugin alone. The result is nil for
// DEL and CHECK.
func (n *Node) InvokePlugin(ctx context.Context, command, pluginType string, a PodArgs, prevResult types.Result) (types.Result, error) {
	list, err := n.networkList()
	if err != nil {
		return nil, err
	}
	var plugin *libcni.PluginConfig
	for _, p := range list.Plugins {
		if p.Network.Type == pluginType {
			plugin = p
			break
		}
	}
	if plugin == nil {
		return nil, fmt.Errorf("no plugin of type %q in the chain", pluginType)
	}
	inject := map[string]any{"name": list.Name, "cniVersion": list.CNIVersion}
	if prevResult != nil {
		inject["prevResult"] = prevResult
	}
	conf, err := libcni.InjectConf(plugin, inject)
	if err != nil {
		return nil, fmt.Errorf("%s config: %w", pluginType, err)
	}
	path, err := invoke.FindInPath(pluginType, n.CNIPath)
	if err != nil {
		return nil, err
	}
	rt := runtimeConf(a)
	args := &invoke.Args{
		Command:     command,
		ContainerID: rt.ContainerID,
		NetNS:       rt.NetNS,
		PluginArgs:  rt.Args,
		IfName:      rt.IfName,
		Path:        strings.Join(n.CNIPath, ":"),
	}
	var res types.Result
	err = n.inNode(func() error {
		var err error
		if command == "ADD" {
			res, err = invoke.ExecPluginWithResult(ctx, path, conf.Bytes, args, nil)
		} else {
			err = invoke.ExecPluginWithoutResult(ctx, path, conf.Bytes, args, nil)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", pluginType, command, err)
	}
	return res, nil
}
