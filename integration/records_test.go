package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netpol/netpol/integration/node"
)

// A record left by a lost DEL (its pod gone from the source, its network
// namespace gone, older than --stale-record-grace) is removed by the
// agent's sync, which logs it and takes its address out of every set; the
// live pods' records stay.
func TestStaleRecordRemovedBySync(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{"default/web": "app=web", "default/db": "app=db"}))
	writeManifest(t, dir, "20-policy.yaml", dbPolicyYAML("default"))
	pods := addServingPods(t, n, "default/web", "default/db")
	const ghostIP = "10.244.1.250"
	ghost := `{"containerID":"ghost","ifName":"eth0","namespace":"default","name":"ghost","ips":["` + ghostIP +
		`"],"created":"2020-01-01T00:00:00Z","netns":"/var/run/netns/netpol-test-gone"}`
	record := filepath.Join(n.DataDir, "pods", "ghost@eth0.json")
	if err := os.WriteFile(record, []byte(ghost), 0o600); err != nil {
		t.Fatal(err)
	}
	sync := func(extra ...string) string {
		t.Helper()
		args := append([]string{"--once", "--manifests", dir, "--node-name", n.Name}, extra...)
		stdout, stderr, code := runAgentSplit(t, n, args...)
		if code != 0 {
			t.Fatalf("agent %v: exit %d\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
		}
		return stderr
	}
	sync("--stale-record-grace", "0") // 0 keeps every record: unknown pod of an isolated namespace
	if names, _ := setsHolding(nodeSets(t, n), ghostIP); !slices.Contains(names, "NETPOL4-DENY") {
		t.Fatalf("with the grace 0 the kept record's address is in %v, want NETPOL4-DENY", names)
	}
	log := sync()
	if !strings.Contains(log, "stale pod record removed") || !strings.Contains(log, "containerID=ghost") {
		t.Errorf("the removal is not logged:\n%s", log)
	}
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Errorf("stale record still there: %v", err)
	}
	if names, _ := setsHolding(nodeSets(t, n), ghostIP); len(names) != 0 {
		t.Errorf("the removed record's address is still in %v", names)
	}
	want := sortedCopy([]string{recordFileName(pods[0]), recordFileName(pods[1])})
	if got := podRecords(t, n); !slices.Equal(got, want) {
		t.Errorf("records %v, want the live pods' %v", got, want)
	}
}
