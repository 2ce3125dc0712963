package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

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
	path, conf, args, err := n.pluginInvocation(command, pluginType, a, prevResult)
	if err != nil {
		return nil, err
	}
	var res types.Result
	err = n.inNode(func() error {
		var err error
		if command == "ADD" {
			res, err = invoke.ExecPluginWithResult(ctx, path, conf, args, nil)
		} else {
			err = invoke.ExecPluginWithoutResult(ctx, path, conf, args, nil)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", pluginType, command, err)
	}
	return res, nil
}

// PluginCommand is InvokePlugin as an unstarted process, so that a test can
// signal the plugin while it runs, as a runtime's timeout would kill it:
// `ip netns exec NODE PLUGIN` with the CNI_* environment and the config on
// stdin.
func (n *Node) PluginCommand(ctx context.Context, command, pluginType string, a PodArgs, prevResult types.Result) (*exec.Cmd, error) {
	path, conf, args, err := n.pluginInvocation(command, pluginType, a, prevResult)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.NetNS, path)
	cmd.Env = append(os.Environ(), args.AsEnv()...)
	cmd.Stdin = bytes.NewReader(conf)
	cmd.WaitDelay = time.Second
	return cmd, nil
}

// pluginInvocation is what InvokePlugin runs: the plugin's path, its config
// and its CNI arguments.
func (n *Node) pluginInvocation(command, pluginType string, a PodArgs, prevResult types.Result) (string, []byte, *invoke.Args, error) {
	list, err := n.networkList()
	if err != nil {
		return "", nil, nil, err
	}
	var plugin *libcni.PluginConfig
	for _, p := range list.Plugins {
		if p.Network.Type == pluginType {
			plugin = p
			break
		}
	}
	if plugin == nil {
		return "", nil, nil, fmt.Errorf("no plugin of type %q in the chain", pluginType)
	}
	inject := map[string]any{"name": list.Name, "cniVersion": list.CNIVersion}
	if prevResult != nil {
		inject["prevResult"] = prevResult
	}
	conf, err := libcni.InjectConf(plugin, inject)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%s config: %w", pluginType, err)
	}
	path, err := invoke.FindInPath(pluginType, n.CNIPath)
	if err != nil {
		return "", nil, nil, err
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
	return path, conf.Bytes, args, nil
}
