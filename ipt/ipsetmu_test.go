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

// TestIPSetGrowthsSideBySide: two restores that only create sets and add
// or delete members run at once (the families' growths): an `ipset` first
// in PATH notes its start, then waits (at most 5 s) until two runs have
// started before it notes its end; run one at a time, the first would
// give up waiting and the notes would read start, end, start, end.
func TestIPSetGrowthsSideBySide(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := "#!/bin/sh\necho start >> " + log + "\ni=0\n" +
		"while [ \"$(grep -c start " + log + ")\" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n" +
		"echo end >> " + log + "\n"
	if err := os.WriteFile(filepath.Join(dir, "ipset"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	r := &Runner{Mode: ModeNFT}
	growth := []byte("create NETPOL4-A hash:ip family inet maxelem 65536\nadd NETPOL4-A 10.0.0.1\ndel NETPOL4-A 10.0.0.2\n")
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.run(context.Background(), growth, "ipset", "-exist", "restore"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if want := "start\nstart\nend\nend\n"; string(data) != want {
		t.Errorf("the ipset runs noted\n%s\nwant side by side:\n%s", data, want)
	}
}

// TestIPSetExclusive: only an `ipset -exist restore` of creates, adds and
// dels runs beside other ipset commands; a dump, and a restore that swaps,
// flushes or destroys, runs alone.
func TestIPSetExclusive(t *testing.T) {
	restore := []string{"-exist", "restore"}
	for _, tc := range []struct {
		args []string
		in   string
		want bool
	}{
		{[]string{"save"}, "", true},
		{[]string{"list", "-n"}, "", true},
		{restore, "create NETPOL4-A hash:ip family inet maxelem 65536\nadd NETPOL4-A 10.0.0.1\ndel NETPOL4-A 10.0.0.2\n", false},
		{restore, "add NETPOL4-A 10.0.0.1\n", false},
		{restore, "create NETPOL-TMP-1 hash:ip family inet maxelem 65536\nadd NETPOL-TMP-1 10.0.0.1\nswap NETPOL-TMP-1 NETPOL4-A\nflush NETPOL-TMP-1\n", true},
		{restore, "destroy NETPOL4-A\n", true},
		{restore, "add NETPOL4-A 10.0.0.1\nflush NETPOL4-A\n", true},
		{[]string{"restore"}, "add NETPOL4-A 10.0.0.1\n", true},
	} {
		if got := ipsetExclusive(tc.args, []byte(tc.in)); got != tc.want {
			t.Errorf("ipsetExclusive(%q, %q) = %v, want %v", tc.args, tc.in, got, tc.want)
		}
	}
}
