package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/netpol/netpol/state"
)

// A DEL (or GC) that arrives after `netpol-agent --uninstall` must succeed
// and leave the data directory as uninstall left it: no pods/, lock or
// netpol.log recreated (deploy/uninstall.yaml promises an empty directory).
func TestDelAfterUninstallCreatesNothing(t *testing.T) {
	f := newFixture(t)
	// the default log file (dataDir/netpol.log), unlike f.stdin
	stdin := []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"test","type":"netpol","dataDir":%q,"prevResult":%s}`,
		f.dataDir, prevResult))
	if _, err := f.call(add, "c1", podArgs, stdin); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if err := state.New(f.dataDir).RemoveAll(); err != nil { // what --uninstall does to the directory
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := f.call(del, "c1", podArgs, stdin); err != nil {
			t.Errorf("DEL %d after uninstall: %v", i+1, err)
		}
	}
	if entries, _ := os.ReadDir(f.dataDir); len(entries) != 0 {
		t.Errorf("DEL after uninstall recreated %v", entries)
	}

	gone := filepath.Join(f.dataDir, "never-created")
	stdin = []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"test","type":"netpol","dataDir":%q,"prevResult":%s}`,
		gone, prevResult))
	if _, err := f.call(del, "c1", podArgs, stdin); err != nil {
		t.Errorf("DEL with no data directory: %v", err)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("DEL created the data directory %s: %v", gone, err)
	}
}
