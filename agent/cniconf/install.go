package cniconf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/state"
)

// BackupSuffix is appended to the name of the original configuration kept
// beside the chained one.
const BackupSuffix = ".netpol-orig"

// extensions are the file name endings libcni reads as configurations.
var extensions = []string{".conf", ".conflist", ".json"}

// Options say where the CNI configuration and plugins live and what the
// netpol plugin entry holds.
type Options struct {
	ConfDir string // e.g. /etc/cni/net.d
	BinDir  string // e.g. /opt/cni/bin
	// Plugin is the netpol binary to copy into BinDir ("" copies nothing).
	Plugin string
	// Entry is the netpol plugin configuration (Entry builds the usual one).
	Entry map[string]any
}

// Entry returns the netpol plugin configuration for dataDir and an
// iptables mode (auto, nft or legacy).
func Entry(dataDir, iptablesMode string) map[string]any {
	return map[string]any{"type": conf.PluginType, "dataDir": dataDir, "iptablesMode": iptablesMode}
}

// Result says what Install did.
type Result struct {
	File    string // the chained configuration
	Changed bool   // it was written (false: already as wanted)
	Copied  bool   // the plugin binary was (re)written
}

// Install copies the plugin and chains netpol into the runtime's
// configuration (see the package comment). Running it again changes
// nothing.
func Install(o Options) (Result, error) {
	var res Result
	if o.Plugin != "" {
		copied, err := copyPlugin(o.Plugin, filepath.Join(o.BinDir, conf.PluginType))
		if err != nil {
			return res, err
		}
		res.Copied = copied
	}
	name, err := primary(o.ConfDir)
	if err != nil {
		return res, err
	}
	path := filepath.Join(o.ConfDir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return res, err
	}
	single := filepath.Ext(name) != ".conflist"
	chained, err := Chain(data, single, o.Entry)
	if err != nil {
		return res, fmt.Errorf("%s: %w", path, err)
	}
	target := chainedName(name)
	res.File = filepath.Join(o.ConfDir, target)
	if target == name && bytes.Equal(chained, data) {
		return res, nil
	}
	if !Chained(data, single) {
		// The file is the network's own: keep it (again, if its owner
		// rewrote it since the last install) for Uninstall.
		if err := state.WriteFileAtomicMode(path+BackupSuffix, data, 0o644); err != nil {
			return res, err
		}
	}
	if err := state.WriteFileAtomicMode(res.File, chained, 0o644); err != nil {
		return res, err
	}
	if target != name {
		if err := os.Remove(path); err != nil {
			return res, err
		}
	}
	res.Changed = true
	return res, nil
}

// Uninstall puts back every original configuration Install kept and
// removes the chained ones. The plugin binary stays: a pod's DEL may still
// run the netpol the pod was added with, and with no state left it does
// nothing. Running it again changes nothing.
func Uninstall(confDir string) (restored []string, err error) {
	entries, err := os.ReadDir(confDir)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range entries {
		backup, ok := strings.CutSuffix(e.Name(), BackupSuffix)
		if !ok || e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(confDir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := restore(confDir, backup, data); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(filepath.Join(confDir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		restored = append(restored, backup)
	}
	return restored, errors.Join(errs...)
}

// restore puts the original configuration name back, and removes the
// chained one. A configuration its owner rewrote since (no netpol in it) is
// newer than the backup and stays.
func restore(dir, name string, original []byte) error {
	target := filepath.Join(dir, chainedName(name))
	current, err := os.ReadFile(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case !Chained(current, false):
		return nil
	case target != filepath.Join(dir, name):
		if err := os.Remove(target); err != nil {
			return err
		}
	}
	return state.WriteFileAtomicMode(filepath.Join(dir, name), original, 0o644)
}

// primary returns the name of the configuration the runtime uses: the
// first file of dir, by name, with a configuration extension.
func primary(dir string) (string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return "", fmt.Errorf("CNI configuration directory: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		if slices.Contains(extensions, filepath.Ext(e.Name())) {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("no CNI configuration in %s (*.conf, *.conflist, *.json): install the network (bridge, flannel) first", dir)
}

// chainedName is the file the chained configuration of name goes to: a
// configuration list keeps its name, a single configuration becomes
// STEM.conflist.
func chainedName(name string) string {
	if filepath.Ext(name) == ".conflist" {
		return name
	}
	return strings.TrimSuffix(name, filepath.Ext(name)) + ".conflist"
}

// copyPlugin writes src to dst (mode 0755) through a temp file and a
// rename, so a runtime executing the old binary is never disturbed; it does
// nothing when dst has the same bytes.
func copyPlugin(src, dst string) (bool, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("plugin: %w", err)
	}
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	return true, state.WriteFileAtomicMode(dst, data, 0o755)
}
