package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/state"
)

func TestDropsPrintsRecordsOfAPod(t *testing.T) {
	dir := t.TempDir()
	w, err := state.New(dir).OpenDropLog(1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, pair := range [][2]string{{"default/a", "default/db"}, {"default/b", "default/db"}, {"default/db", "default/a"}} {
		r := &state.DropRecord{Time: time.Unix(int64(i), 0).UTC(), Direction: "ingress", Path: "bridged", Protocol: "TCP",
			Src: state.DropEndpoint{IP: "10.0.0.1", Pod: pair[0]}, Dst: state.DropEndpoint{IP: "10.0.0.2", Port: 80, Pod: pair[1]},
			Verdict: "drop", Reason: "no policy allows it", Policies: []string{"default/p"}}
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	var out bytes.Buffer
	if code := drops([]string{"--data-dir", dir, "--pod", "default/a"}, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"pod":"default/a"`) || !strings.Contains(lines[0], `"time":"1970-01-01T00:00:00Z"`) ||
		!strings.Contains(lines[1], `"time":"1970-01-01T00:00:02Z"`) {
		t.Errorf("drops --pod default/a printed:\n%s", out.String())
	}
	if code := drops([]string{"--help"}, &out); code != 0 {
		t.Errorf("drops --help: exit %d", code)
	}
	if code := drops([]string{"--data-dir", dir, "extra"}, &out); code != 2 {
		t.Errorf("drops with an argument: exit %d, want 2", code)
	}
}
