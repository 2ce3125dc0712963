package ipt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestIPSetCommandsOneAtATime: a Runner's ipset commands never overlap,
// even when its families apply side by side: an `ipset save` of one family
// would dump the sets the other is swapping. An `ipset` first in PATH notes
// when each run starts and ends and sleeps in between; four runs started
// at once must note start, end, start, end, ...
func TestIPSetCommandsOneAtATime(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := "#!/bin/sh\necho start >> " + log + "\nsleep 0.05\necho end >> " + log + "\n"
	if err := os.WriteFile(filepath.Join(dir, "ipset"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	r := &Runner{Mode: ModeNFT}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.run(context.Background(), nil, "ipset", "save"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("start\nend\n", 4)
	if string(data) != want {
		t.Errorf("the ipset runs noted\n%s\nwant one at a time:\n%s", data, want)
	}
}
