package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// A pod created while the agent lies killed mid-sync (the DaemonSet has
// not restarted it yet) is isolated from its first packet, whatever step
// the sync was killed at: its ADD reads the index of the last complete
// sync while the kernel may already hold part of the next one.
func TestAddWhileAgentKilledMidSync(t *testing.T) {
	n := newNode(t, node.Options{})
	var worlds []string
	for v, sel := range []string{"app: db", "tier: data"} {
		dir := t.TempDir()
		pol := strings.Replace(strings.Replace(dbPolicyYAML("default"), "name: db-from-web", fmt.Sprintf("name: db-%d", v), 1),
			"app: db", sel, 1)
		writeManifest(t, dir, "50-default.yaml", yamlDocs(podsYAML(map[string]string{
			"default/web": "app=web", "default/db": "app=db,tier=data", "default/other": "app=other",
			"default/late": "app=db,tier=data",
		}), pol))
		worlds = append(worlds, dir)
	}
	pods := addServingPods(t, n, "default/web", "default/db", "default/other")
	other := pods[2]
	syncOnce(t, n, worlds[0])
	s := newKillShim(t)
	n.AgentEnv = []string{"PATH=" + s.bin + ":" + os.Getenv("PATH")}
	p := startKillProbe(other, pods[1].IP)
	defer func() {
		select {
		case <-p.stop:
		default:
			p.finish()
		}
	}()
	s.arm(t, 0, "none")
	a := startAgent(t, n, worlds[1])
	killAgent(t, a)
	commands := s.log(t)

	points, w := 0, 0
	var open []string
	for at := 1; at <= len(commands); at++ {
		modes := []string{"before"}
		if at == len(commands) {
			modes = append(modes, "after")
		}
		for _, mode := range modes {
			reached := killAgentAt(t, n, s, p, worlds[w%2], at, mode, 0)
			w++
			if !reached {
				// A sync in the other direction may run fewer commands.
				continue
			}
			points++
			late, err := n.AddPod("default", "late")
			if err != nil {
				t.Logf("%s command %d: ADD failed (closed): %v", mode, at, err)
				continue
			}
			if err := late.Serve(servePort); err != nil {
				t.Fatal(err)
			}
			if node.ProbeOnce(other, late.IP, "tcp", servePort, 100*time.Millisecond) == nil {
				in, _ := setsHolding(nodeSets(t, n), late.IP)
				open = append(open, fmt.Sprintf("%s command %d (%s) of a sync to world %d: late in %v",
					mode, at, strings.SplitN(commands[at-1], " ", 2)[1], (w-1)%2, in))
			}
			if err := n.DelPod(late); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.AgentEnv = nil
	a = startAgent(t, n, worlds[w%2])
	if err := a.Stop(); err != nil {
		t.Errorf("agent after restart: %v", err)
	}
	p.finish()
	t.Logf("%d kill points, %d probes of db sent, %d got through", points, p.sent.Load(), p.passed.Load())
	if len(open) > 0 {
		t.Errorf("a pod added while the agent lay killed mid-sync was reachable from a pod its policy denies, at:\n%s\ncommands of a sync:\n%s",
			strings.Join(open, "\n"), strings.Join(commands, "\n"))
	}
	if p.passed.Load() > 0 {
		t.Errorf("other reached db %d times, at: %v", p.passed.Load(), p.breaches)
	}
}
