package integration

// The test-only wrappers that freeze the agent at the N-th command of a
// sync (see kill_test.go), and the probe that runs while it is frozen.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/node"
)

// killWrapped are the commands the agent may start that killShim wraps.
var killWrapped = func() []string {
	var out []string
	for _, base := range []string{"iptables", "ip6tables", "iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"} {
		out = append(out, base, base+"-save", base+"-restore")
	}
	return append(out, "ipset")
}()

// killShimScript is the wrapper: test-only, it lives in the test's temp dir.
// Armed with "AT MODE" in $dir/arm, it numbers the commands it sees (under
// an flock: the agent may run commands side by side, e.g. the two
// families' restores) and stops at the AT-th: before it (MODE before), after feeding it half its
// standard input (mid), or after it ran (after, hold). Stopped, it writes
// "PID MODE" to $dir/paused and sleeps, bounded, until the test kills it;
// in mode hold it returns the command's status as soon as $dir/release
// exists, so the agent goes on and the test can kill it a little later. A
// command after the AT-th (one the agent started beside it) waits for the
// release too, and never runs once the agent is gone: a sync frozen at the
// AT-th command starts nothing after it, whatever runs side by side.
const killShimScript = `#!/bin/bash
real=%q
dir=%q
if [ -r "$dir/arm" ]; then
  read -r at mode < "$dir/arm"
  exec 9>>"$dir/count.lock"
  flock 9
  n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$dir/count"
  echo "$n ${0##*/} $*" >> "$dir/log"
  exec 9>&-
  if [ "$at" -gt 0 ] && [ "$n" -gt "$at" ]; then
    for i in $(seq 6000); do
      [ -e "$dir/release" ] && break
      kill -0 "$PPID" 2>/dev/null || exit 1
      sleep 0.01
    done
    [ -e "$dir/release" ] || exit 1
  fi
  if [ "$n" = "$at" ]; then
    case "$mode" in
    after) "$real" "$@" >/dev/null 2>&1 ;;
    hold)
      "$real" "$@"
      status=$?
      echo "$$ $mode" > "$dir/paused.tmp" && mv "$dir/paused.tmp" "$dir/paused"
      for i in $(seq 6000); do [ -e "$dir/release" ] && exit $status; sleep 0.01; done
      exit $status ;;
    mid)
      input=$(cat)
      total=$(printf '%%s\n' "$input" | wc -l)
      printf '%%s\n' "$input" | head -n $((total / 2)) | "$real" "$@" >/dev/null 2>&1 ;;
    esac
    echo "$$ $mode" > "$dir/paused.tmp" && mv "$dir/paused.tmp" "$dir/paused"
    exec sleep 60
  fi
fi
exec "$real" "$@"
`

// killShim is a directory of wrappers to put first in the agent's PATH.
type killShim struct {
	dir, bin string
}

func newKillShim(t *testing.T) *killShim {
	t.Helper()
	s := &killShim{dir: t.TempDir()}
	s.bin = filepath.Join(s.dir, "bin")
	if err := os.Mkdir(s.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range killWrapped {
		real, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		script := fmt.Sprintf(killShimScript, real, s.dir)
		if err := os.WriteFile(filepath.Join(s.bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// arm makes the wrappers stop at the at-th command from now (never, for 0).
func (s *killShim) arm(t *testing.T, at int, mode string) {
	t.Helper()
	for _, f := range []string{"count", "log", "paused", "release"} {
		if err := os.Remove(filepath.Join(s.dir, f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	writeManifest(t, s.dir, "arm", fmt.Sprintf("%d %s\n", at, mode))
}

// log returns the commands seen since arm, "N NAME ARGS" each.
func (s *killShim) log(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// paused returns the PID of the stopped wrapper, if one stopped.
func (s *killShim) paused() (int, bool) {
	data, err := os.ReadFile(filepath.Join(s.dir, "paused"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.Fields(string(data))[0])
	return pid, err == nil
}

// killProbe connects, without pause, from a pod a policy denies to a pod
// it isolates, and counts the connections that got through.
type killProbe struct {
	sent, passed atomic.Int64
	at           atomic.Value // string: the kill point in force
	mu           sync.Mutex
	breaches     []string
	stop, done   chan struct{}
}

// startKillProbe probes from -> to:servePort over TCP until stopped (at most
// 10 minutes and 200,000 attempts).
func startKillProbe(from node.Host, to string) *killProbe {
	p := &killProbe{stop: make(chan struct{}), done: make(chan struct{})}
	p.at.Store("start")
	go func() {
		defer close(p.done)
		end := time.Now().Add(10 * time.Minute)
		for i := 0; i < 200000 && time.Now().Before(end); i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			p.sent.Add(1)
			if node.ProbeOnce(from, to, "tcp", servePort, 50*time.Millisecond) == nil {
				p.passed.Add(1)
				p.mu.Lock()
				p.breaches = append(p.breaches, p.at.Load().(string))
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *killProbe) finish() {
	close(p.stop)
	<-p.done
}
