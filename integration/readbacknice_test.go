package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/agent"
	"github.com/netpol/netpol/integration/node"
)

// TestReadBackRunsNiced: a running agent's drift checks read the kernel
// back at agent.BackgroundNice, so that a CNI ADD starting meanwhile is not
// kept off the CPU by them; the iptables-save each one starts (observed
// through a wrapper first in the agent's PATH that notes its nice value,
// then runs the real one) shows it.
func TestReadBackRunsNiced(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	addServingPods(t, n, "default/db1", "default/web")
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{"default/db1": "app=db", "default/web": "app=web"}))
	wrap, seen := t.TempDir(), filepath.Join(t.TempDir(), "nice")
	for _, fam := range []string{"iptables", "ip6tables"} {
		for _, kind := range []string{"", "-nft", "-legacy"} {
			name := fam + kind + "-save"
			real, err := exec.LookPath(name)
			if err != nil {
				continue
			}
			script := fmt.Sprintf("#!/bin/sh\nnice >> %s\nexec %s \"$@\"\n", seen, real)
			if err := os.WriteFile(filepath.Join(wrap, name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.AgentEnv = append(n.AgentEnv, "PATH="+wrap+":"+os.Getenv("PATH"))
	a, err := n.StartAgent("--manifests", dir, "--repair-interval", "100ms")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bnWaitFor(time.Minute, func() bool { return strings.Contains(a.Output(), "msg=synced") }); !ok {
		t.Fatalf("the agent never synced:\n%s", a.Output())
	}
	// The first sync's own read-back (in force?) ran under the lock, at
	// the agent's priority; everything after it is a drift check's.
	data, _ := os.ReadFile(seen)
	from := len(data)
	var got []string
	if _, ok := bnWaitFor(time.Minute, func() bool {
		data, _ := os.ReadFile(seen)
		got = strings.Fields(string(data[from:]))
		return len(got) >= 4
	}); !ok {
		t.Fatalf("%d iptables-save runs in a minute of drift checks every 100 ms, want 4:\n%s", len(got), a.Output())
	}
	want := fmt.Sprint(agent.BackgroundNice)
	for i, g := range got {
		if g != want {
			t.Errorf("iptables-save %d of the drift checks ran at nice %s, want %s", i+1, g, want)
		}
	}
	if err := a.Stop(); err != nil {
		t.Error(err)
	}
}
