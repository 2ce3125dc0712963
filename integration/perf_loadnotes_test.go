package integration

// What row 7's running agent did while the ADDs ran, printed under the
// table: how long its syncs held the data directory lock, how long the
// ADDs waited for it (the plugin's log says, where the plugin logs it),
// the ADDs that overlapped one of its syncs against the others,
// its drift repairs, and the CPU the agent and its children (iptables-save
// of the read-back, iptables-restore) used, so that a slow ADD can be told
// to wait on the lock or on the CPU.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// pfWaitedLine finds how long one of the plugin's ADDs waited for the lock.
var pfWaitedLine = regexp.MustCompile(`msg="pod added" .* waited=(\S+)`)

// pfSyncLine finds a sync in the agent's log: when it was logged (its end)
// and how long it took.
var pfSyncLine = regexp.MustCompile(`time=(\S+) level=\S+ msg=synced .* took=(\S+) compile=`)

// pfRepairLine finds a drift repair in the agent's log.
var pfRepairLine = regexp.MustCompile(`msg="kernel drifted[^\n]*`)

// pfLoadWatch is the state of an agent and a data directory at the start
// of row 7.
type pfLoadWatch struct {
	agent            *node.Agent
	pluginLog        string
	logAt, pluginAt  int
	self, children   time.Duration
	start            time.Time
	selfOK, pluginOK bool
	adds             []pfSpan // the ADDs of the netpol side
}

// pfSpan is a stretch of time: an ADD, a sync.
type pfSpan struct {
	start time.Time
	took  time.Duration
}

// add notes one ADD of the netpol side.
func (w *pfLoadWatch) add(start time.Time, took time.Duration) {
	w.adds = append(w.adds, pfSpan{start, took})
}

// pfWatchLoad notes where the agent's output and the plugin's log of n end
// and the agent's CPU time so far.
func pfWatchLoad(a *node.Agent, n *node.Node) *pfLoadWatch {
	w := &pfLoadWatch{agent: a, pluginLog: filepath.Join(n.DataDir, "netpol.log"), start: time.Now()}
	w.logAt = len(a.Output())
	if data, err := os.ReadFile(w.pluginLog); err == nil || errors.Is(err, os.ErrNotExist) {
		w.pluginAt, w.pluginOK = len(data), true // none yet: everything in it is new
	}
	var err error
	w.self, w.children, err = pfCPU(a.PID)
	w.selfOK = err == nil
	return w
}

// notes describes what happened since pfWatchLoad, in lines for the
// table's header.
func (w *pfLoadWatch) notes() []string {
	took := time.Since(w.start)
	out := w.agent.Output()[w.logAt:]
	var held []time.Duration
	longest := ""
	for _, m := range bnHeldLine.FindAllStringSubmatch(out, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			if len(held) == 0 || d > slices.Max(held) {
				longest = m[0]
			}
			held = append(held, d)
		}
	}
	lines := []string{fmt.Sprintf("row 7's agent over %v: %d syncs, %d drift repairs; lock held by its syncs: %s",
		took.Round(time.Second), len(held), strings.Count(out, "repairing"), pfSpreadP(held))}
	if longest != "" {
		lines = append(lines, "row 7's agent, the sync that held the lock longest: "+longest[strings.Index(longest, "why="):])
	}
	for i, l := range pfRepairLine.FindAllString(out, 3) {
		lines = append(lines, fmt.Sprintf("row 7's agent, repair %d: %.200s", i+1, l))
	}
	if data, err := os.ReadFile(w.pluginLog); err == nil && w.pluginOK && len(data) >= w.pluginAt {
		var waited []time.Duration
		for _, m := range pfWaitedLine.FindAllStringSubmatch(string(data[w.pluginAt:]), -1) {
			if d, err := time.ParseDuration(m[1]); err == nil {
				waited = append(waited, d)
			}
		}
		lines = append(lines, fmt.Sprintf("row 7's ADDs waited for the lock: %s", pfSpreadP(waited)))
	}
	lines = append(lines, w.syncOverlap(out))
	if self, children, err := pfCPU(w.agent.PID); err == nil && w.selfOK {
		lines = append(lines, fmt.Sprintf("row 7's agent used CPU: itself %.0f%%, its children %.0f%% (of one core)",
			100*float64(self-w.self)/float64(took), 100*float64(children-w.children)/float64(took)))
	}
	return lines
}

// pfSpreadP is "n, ms min/med/p99/max a / b / c / d" of ds.
func pfSpreadP(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none logged"
	}
	return fmt.Sprintf("%d, ms min/med/p99/max %.1f / %.1f / %.1f / %.1f", len(ds),
		bnMs(slices.Min(ds)), bnMs(bnMedian(ds)), bnMs(bnPercentile(ds, 99)), bnMs(slices.Max(ds)))
}

// pfCPU is the CPU time (user + system) process pid used, and that of its
// children it waited for (/proc/PID/stat utime+stime, cutime+cstime).
func pfCPU(pid int) (self, children time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // fields from 3 (state) on
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks [4]float64
	for i := range ticks { // utime, stime, cutime, cstime: fields 14 to 17
		if ticks[i], err = strconv.ParseFloat(f[11+i], 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	const hz = 100 // USER_HZ
	tick := time.Second / hz
	return time.Duration(ticks[0]+ticks[1]) * tick, time.Duration(ticks[2]+ticks[3]) * tick, nil
}

// syncOverlap is the note that splits the ADDs noted into those that
// overlapped a sync of the agent (from the time its line was logged less
// its took, to that time) and the others, so that a slow ADD can be told
// to come with the agent's syncs or not.
func (w *pfLoadWatch) syncOverlap(out string) string {
	var syncs []pfSpan
	for _, m := range pfSyncLine.FindAllStringSubmatch(out, -1) {
		end, err := time.Parse(time.RFC3339Nano, m[1])
		took, err2 := time.ParseDuration(m[2])
		if err == nil && err2 == nil {
			syncs = append(syncs, pfSpan{end.Add(-took), took})
		}
	}
	var during, apart []time.Duration
	for _, a := range w.adds {
		if slices.ContainsFunc(syncs, func(s pfSpan) bool {
			return s.start.Before(a.start.Add(a.took)) && a.start.Before(s.start.Add(s.took))
		}) {
			during = append(during, a.took)
		} else {
			apart = append(apart, a.took)
		}
	}
	return fmt.Sprintf("row 7's ADDs that overlapped a sync of the agent: %s; the others: %s", pfSpreadP(during), pfSpreadP(apart))
}
