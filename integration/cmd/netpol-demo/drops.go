package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/state"
)

// startDropLog starts the long-running agent, which reads the kernel's
// drop log (NFLOG) while the matrices run, and waits for its first sync.
func (s *demoState) startDropLog() (*node.Agent, error) {
	a, err := s.n.StartAgent("--manifests", s.dir)
	if err != nil {
		return nil, err
	}
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(a.Output(), "msg=synced") {
			return a, nil
		}
	}
	return nil, fmt.Errorf("netpol-agent did not sync within 20s:\n%s", a.Output())
}

// drops prints the drop records the denied cells produced (`netpol-agent
// drops`): one line per denied pair, then one record whole.
func (s *demoState) drops() error {
	var recs []state.DropRecord
	last := -1
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		out, err := s.n.RunAgent("drops")
		if err != nil {
			return fmt.Errorf("netpol-agent drops: %v\n%s", err, out)
		}
		recs = recs[:0]
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var r state.DropRecord
			if json.Unmarshal([]byte(l), &r) == nil {
				recs = append(recs, r)
			}
		}
		if len(recs) == last { // the agent has written all it read
			break
		}
		last = len(recs)
	}
	fmt.Printf("Drop records of the denied cells (netpol-agent drops --data-dir %s; one line per pair of %d records):\n\n", s.n.DataDir, len(recs))
	seen := map[string]bool{}
	var lines []string
	for _, r := range recs {
		pair := fmt.Sprintf("%s > %s:%d", end(r.Src), end(r.Dst), r.Dst.Port)
		if seen[pair] {
			continue
		}
		seen[pair] = true
		lines = append(lines, fmt.Sprintf("%-44s %-4s %-7s %-7s %s %v", pair, r.Protocol, r.Direction, r.Path, r.Reason, r.Policies))
	}
	fmt.Printf("%s\n\n", indent(strings.Join(lines, "\n")))
	for _, r := range recs {
		if r.Dst.Pod == "default/db" {
			b, _ := json.Marshal(r)
			fmt.Printf("One record as the agent writes it (dataDir/drops/drops.log):\n\n%s\n\n", indent(string(b)))
			break
		}
	}
	return nil
}

// end names one end of a record: its pod, or its address.
func end(e state.DropEndpoint) string {
	if e.Pod != "" {
		return e.Pod
	}
	return e.IP
}
