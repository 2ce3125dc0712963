// Package cniconf chains netpol into the node's CNI configuration, the way
// the DaemonSet's install step does: it finds the configuration the
// container runtime uses (the first *.conf, *.conflist or *.json of the
// directory by name, as libcni and containerd pick it), inserts the netpol
// plugin right after its main plugin (bridge, flannel, ...) keeping every
// other plugin and field, and keeps the original beside it as
// NAME.netpol-orig (an extension no runtime reads) so that Uninstall can put
// it back. Install is idempotent, and re-chains a configuration that its
// owner rewrote (flannel rewrites its conflist when its pod restarts).
package cniconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/netpol/netpol/conf"
)

// Chain returns conflist with the netpol plugin entry inserted after the
// first (main) plugin, or, when a netpol plugin is there already, with that
// entry replaced by entry in place. All other fields and plugins are kept.
// A single-plugin configuration (a .conf file) is given with single set;
// the result is always a configuration list.
func Chain(data []byte, single bool, entry map[string]any) ([]byte, error) {
	list, err := decodeList(data, single)
	if err != nil {
		return nil, err
	}
	version, _ := list["cniVersion"].(string)
	if !slices.Contains(conf.SupportedVersions(), version) {
		return nil, fmt.Errorf("cniVersion %q: netpol supports %v", version, conf.SupportedVersions())
	}
	plugins, err := pluginList(list)
	if err != nil {
		return nil, err
	}
	if len(plugins) == 0 {
		return nil, errors.New("plugins: empty: there is no main plugin to chain netpol after")
	}
	if i := netpolIndex(plugins); i >= 0 {
		plugins[i] = entry
	} else {
		plugins = slices.Insert(plugins, 1, any(entry))
	}
	list["plugins"] = plugins
	return encode(list)
}

// Chained reports whether the configuration already has a netpol plugin.
func Chained(data []byte, single bool) bool {
	list, err := decodeList(data, single)
	if err != nil {
		return false
	}
	plugins, err := pluginList(list)
	return err == nil && netpolIndex(plugins) >= 0
}

// decodeList decodes a conflist, or wraps a single plugin configuration
// in one (name and cniVersion copied up, as libcni's ConfListFromConf does).
func decodeList(data []byte, single bool) (map[string]any, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep numbers exactly as written
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if obj == nil {
		return nil, errors.New("not a JSON object")
	}
	if !single {
		return obj, nil
	}
	if _, ok := obj["type"].(string); !ok {
		return nil, errors.New("type: missing in a single plugin configuration")
	}
	return map[string]any{"cniVersion": obj["cniVersion"], "name": obj["name"], "plugins": []any{obj}}, nil
}

// pluginList returns the "plugins" array, checking every entry is an object
// with a type.
func pluginList(list map[string]any) ([]any, error) {
	raw, ok := list["plugins"]
	if !ok {
		return nil, errors.New("plugins: missing (not a configuration list)")
	}
	plugins, ok := raw.([]any)
	if !ok {
		return nil, errors.New("plugins: not an array")
	}
	for i, p := range plugins {
		m, ok := p.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("plugins[%d]: not an object", i)
		}
		if _, ok := m["type"].(string); !ok {
			return nil, fmt.Errorf("plugins[%d].type: missing", i)
		}
	}
	return plugins, nil
}

func netpolIndex(plugins []any) int {
	for i, p := range plugins {
		if m, ok := p.(map[string]any); ok && m["type"] == conf.PluginType {
			return i
		}
	}
	return -1
}

func encode(v any) ([]byte, error) {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
