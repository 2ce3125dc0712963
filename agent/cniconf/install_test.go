package cniconf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// flannel is the conflist flannel's DaemonSet installs (kube-flannel.yml).
const flannel = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
`

// bridge is a plain bridge conflist with a big number that must survive.
const bridge = `{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "mtu": 9001,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
    {"type": "bandwidth", "capabilities": {"bandwidth": true}, "x": 12345678901234567890}
  ]
}`

// bridgeConf is a single-plugin configuration (a .conf file).
const bridgeConf = `{"cniVersion": "0.4.0", "name": "mynet", "type": "bridge", "bridge": "cni0",
 "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"}}`

func opts(t *testing.T) Options {
	t.Helper()
	dir := t.TempDir()
	o := Options{ConfDir: filepath.Join(dir, "net.d"), BinDir: filepath.Join(dir, "bin"),
		Plugin: filepath.Join(dir, "netpol"), Entry: Entry("/var/lib/netpol", "auto")}
	if err := os.MkdirAll(o.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(o.Plugin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return o
}

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// files returns the names and contents of dir.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// pluginTypes returns the types of a conflist's plugins, in order.
func pluginTypes(t *testing.T, data string) []string {
	t.Helper()
	var l struct {
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(data), &l); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range l.Plugins {
		out = append(out, p.Type)
	}
	return out
}

// without returns the conflist with its netpol entry removed, re-encoded,
// so it can be compared with the original for "everything else kept".
func without(t *testing.T, data string) any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatal(err)
	}
	plugins := v["plugins"].([]any)
	v["plugins"] = slices.DeleteFunc(plugins, func(p any) bool { return p.(map[string]any)["type"] == "netpol" })
	return v
}

func decoded(t *testing.T, data string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInstallChainsAndUninstallRestores(t *testing.T) {
	for _, c := range []struct {
		name, file, data string
		want             []string
	}{
		{"flannel", "10-flannel.conflist", flannel, []string{"flannel", "netpol", "portmap"}},
		{"bridge", "10-bridge.conflist", bridge, []string{"bridge", "netpol", "portmap", "bandwidth"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := opts(t)
			write(t, o.ConfDir, c.file, c.data)
			write(t, o.ConfDir, "99-other.conflist", bridge) // not the runtime's: untouched
			res, err := Install(o)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Changed || !res.Copied || filepath.Base(res.File) != c.file {
				t.Errorf("Install = %+v, want the plugin copied and %s changed", res, c.file)
			}
			got := files(t, o.ConfDir)
			if d := cmp.Diff(c.want, pluginTypes(t, got[c.file])); d != "" {
				t.Errorf("plugins (-want +got):\n%s", d)
			}
			if d := cmp.Diff(decoded(t, c.data), without(t, got[c.file])); d != "" {
				t.Errorf("the rest of the conflist changed (-want +got):\n%s", d)
			}
			if c.name == "bridge" && !strings.Contains(got[c.file], "12345678901234567890") {
				t.Errorf("a big number lost precision:\n%s", got[c.file])
			}
			if !strings.Contains(got[c.file], `"dataDir": "/var/lib/netpol"`) {
				t.Errorf("netpol entry lacks dataDir:\n%s", got[c.file])
			}
			if got[c.file+BackupSuffix] != c.data || got["99-other.conflist"] != bridge {
				t.Errorf("backup or other file wrong: %v", got)
			}
			if info, err := os.Stat(filepath.Join(o.BinDir, "netpol")); err != nil || info.Mode().Perm() != 0o755 {
				t.Errorf("plugin binary: %v %v", info, err)
			}

			again, err := Install(o)
			if err != nil || again.Changed || again.Copied {
				t.Errorf("second Install = %+v, %v; want no change", again, err)
			}
			if d := cmp.Diff(got, files(t, o.ConfDir)); d != "" {
				t.Errorf("second Install changed files (-first +second):\n%s", d)
			}

			restored, err := Uninstall(o.ConfDir)
			if err != nil || !slices.Equal(restored, []string{c.file}) {
				t.Fatalf("Uninstall = %v, %v", restored, err)
			}
			want := map[string]string{c.file: c.data, "99-other.conflist": bridge}
			if d := cmp.Diff(want, files(t, o.ConfDir)); d != "" {
				t.Errorf("after Uninstall (-want +got):\n%s", d)
			}
			if restored, err := Uninstall(o.ConfDir); err != nil || len(restored) != 0 {
				t.Errorf("second Uninstall = %v, %v", restored, err)
			}
		})
	}
}

func TestInstallSingleConf(t *testing.T) {
	o := opts(t)
	write(t, o.ConfDir, "10-mynet.conf", bridgeConf)
	if _, err := Install(o); err != nil {
		t.Fatal(err)
	}
	got := files(t, o.ConfDir)
	if _, ok := got["10-mynet.conf"]; ok {
		t.Error("the single configuration is still there: the runtime would pick it first")
	}
	if d := cmp.Diff([]string{"bridge", "netpol"}, pluginTypes(t, got["10-mynet.conflist"])); d != "" {
		t.Errorf("plugins (-want +got):\n%s", d)
	}
	var l map[string]any
	_ = json.Unmarshal([]byte(got["10-mynet.conflist"]), &l)
	if l["cniVersion"] != "0.4.0" || l["name"] != "mynet" {
		t.Errorf("list header = %v %v, want 0.4.0 mynet", l["cniVersion"], l["name"])
	}
	if _, err := Uninstall(o.ConfDir); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"10-mynet.conf": bridgeConf}, files(t, o.ConfDir)); d != "" {
		t.Errorf("after Uninstall (-want +got):\n%s", d)
	}
}

// TestInstallAfterOwnerRewrite: flannel rewrites its conflist when its pod
// restarts; the next Install chains it again and keeps the new original.
func TestInstallAfterOwnerRewrite(t *testing.T) {
	o := opts(t)
	write(t, o.ConfDir, "10-flannel.conflist", flannel)
	if _, err := Install(o); err != nil {
		t.Fatal(err)
	}
	rewritten := strings.Replace(flannel, `"hairpinMode": true`, `"hairpinMode": false`, 1)
	write(t, o.ConfDir, "10-flannel.conflist", rewritten)
	res, err := Install(o)
	if err != nil || !res.Changed {
		t.Fatalf("Install after rewrite = %+v, %v", res, err)
	}
	got := files(t, o.ConfDir)
	if d := cmp.Diff([]string{"flannel", "netpol", "portmap"}, pluginTypes(t, got["10-flannel.conflist"])); d != "" {
		t.Errorf("plugins (-want +got):\n%s", d)
	}
	if got["10-flannel.conflist"+BackupSuffix] != rewritten {
		t.Error("backup is not the rewritten original")
	}
	if _, err := Uninstall(o.ConfDir); err != nil {
		t.Fatal(err)
	}
	if got := files(t, o.ConfDir)["10-flannel.conflist"]; got != rewritten {
		t.Errorf("restored:\n%s\nwant the rewritten original", got)
	}
}

// TestUninstallKeepsANewerOriginal: when the owner rewrote its file after
// the install (netpol gone from it), Uninstall does not put an older
// version back.
func TestUninstallKeepsANewerOriginal(t *testing.T) {
	o := opts(t)
	write(t, o.ConfDir, "10-flannel.conflist", flannel)
	if _, err := Install(o); err != nil {
		t.Fatal(err)
	}
	write(t, o.ConfDir, "10-flannel.conflist", bridge)
	if _, err := Uninstall(o.ConfDir); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"10-flannel.conflist": bridge}, files(t, o.ConfDir)); d != "" {
		t.Errorf("after Uninstall (-want +got):\n%s", d)
	}
}

func TestInstallErrors(t *testing.T) {
	for _, c := range []struct{ name, file, data, want string }{
		{"none", "", "", "no CNI configuration"},
		{"old version", "10-x.conflist", `{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"bridge"}]}`, `cniVersion "0.2.0"`},
		{"no plugins", "10-x.conflist", `{"cniVersion":"1.0.0","name":"n","plugins":[]}`, "plugins: empty"},
		{"not json", "10-x.conflist", `{`, "not a JSON object"},
		{"conf without type", "10-x.conf", `{"cniVersion":"1.0.0","name":"n"}`, "type: missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := opts(t)
			if c.file != "" {
				write(t, o.ConfDir, c.file, c.data)
			}
			before := files(t, o.ConfDir)
			_, err := Install(o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Install = %v, want an error with %q", err, c.want)
			}
			if d := cmp.Diff(before, files(t, o.ConfDir)); d != "" {
				t.Errorf("a failed Install changed files (-before +after):\n%s", d)
			}
		})
	}
}
