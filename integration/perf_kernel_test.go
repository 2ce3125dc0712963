package integration

// What BenchmarkPerf reads back from a node's kernel to see a change land,
// and the traffic generator it runs in pod namespaces.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/netpol/netpol/integration/node"
	"github.com/netpol/netpol/ipt"
)

// pfPollEvery is how often a waiting benchmark reads the kernel back.
const pfPollEvery = time.Millisecond

// pfGen is ipt.NFTGeneration of node n.
func pfGen(n *node.Node) (gen uint32, err error) {
	err = ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error {
		gen, err = ipt.NFTGeneration()
		return err
	})
	return gen, err
}

// pfPortRule matches a rule allowing pfPolicyPort as iptables-save prints
// it (--dport 9001, or 9001 in a --dports list).
var pfPortRule = regexp.MustCompile(`--dports? (?:[0-9:]+,)*` + strconv.Itoa(pfPolicyPort) + `(?:[,: ]|$)`)

// pfWaitRule waits until node n's IPv4 rules allow pfPolicyPort (want) or
// no longer do, and returns how long after start that happened. A watcher
// (pfWatchGen) notes when each nftables generation is first seen, every
// pfPollEvery; the rules are read (iptables-save) whenever the generation
// moved, and the time returned is when the generation they were read from
// was first seen, so the figure is at most pfPollEvery late, never early,
// and the time a read takes is not in it. gen0 is the generation read
// before the change was made.
func pfWaitRule(n *node.Node, gen0 uint32, want bool, start time.Time, timeout time.Duration) (time.Duration, error) {
	w := pfWatchGen(n)
	defer w.close()
	for checked := gen0; ; {
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("%s: after %v the rules still do not say port %d allowed=%v", n.Name, timeout, pfPolicyPort, want)
		}
		g, first, err := w.current()
		if err != nil {
			return 0, err
		}
		if g == checked {
			time.Sleep(pfPollEvery)
			continue
		}
		out, err := n.Exec(context.Background(), "iptables-save", "-t", "filter")
		if err != nil {
			return 0, err
		}
		after, err := pfGen(n)
		if err != nil {
			return 0, err
		}
		if after != g { // the rules read may be of a later generation
			continue
		}
		checked = g
		if pfPortRule.MatchString(string(out)) == want {
			return first.Sub(start), nil
		}
	}
}

// pfGenWatch notes when each nftables generation of a node was first seen.
type pfGenWatch struct {
	mu     sync.Mutex
	latest uint32
	first  map[uint32]time.Time
	err    error
	stop   chan struct{}
	done   chan struct{}
}

// pfWatchGen reads node n's nftables generation every pfPollEvery until
// close.
func pfWatchGen(n *node.Node) *pfGenWatch {
	w := &pfGenWatch{first: map[uint32]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(w.done)
		err := ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error {
			for i := 0; ; i++ {
				g, err := ipt.NFTGeneration()
				if err != nil {
					return err
				}
				now := time.Now()
				w.mu.Lock()
				if _, ok := w.first[g]; !ok {
					w.first[g] = now
				}
				w.latest = g
				w.mu.Unlock()
				if i == 0 {
					close(ready)
				}
				select {
				case <-w.stop:
					return nil
				case <-time.After(pfPollEvery):
				}
			}
		})
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		select {
		case <-ready:
		default:
			close(ready)
		}
	}()
	<-ready
	return w
}

// current is the latest generation seen and when it was first seen.
func (w *pfGenWatch) current() (uint32, time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest, w.first[w.latest], w.err
}

// close stops the watcher and waits for it.
func (w *pfGenWatch) close() {
	close(w.stop)
	<-w.done
}

// pfSetsWith lists the sets of node n holding the plain address ip.
// Equivalent to: ip netns exec NODE ipset save | grep " IP$"
func pfSetsWith(n *node.Node, ip string) (map[string]bool, error) {
	out, err := n.Exec(context.Background(), "ipset", "save")
	if err != nil {
		return nil, err
	}
	sets := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "add" && f[2] == ip {
			sets[f[1]] = true
		}
	}
	return sets, sc.Err()
}

// pfWaitSets waits until, for every set named in want, the membership of
// ip in it is want[set], testing each over netlink every pfPollEvery, and
// returns how long after start that happened (at most pfPollEvery late).
// A set that does not exist counts as not holding ip.
// Equivalent to: ip netns exec NODE ipset test SET IP, in a loop.
func pfWaitSets(n *node.Node, ip string, want map[string]bool, start time.Time, timeout time.Duration) (time.Duration, error) {
	entry := &netlink.IPSetEntry{IP: net.ParseIP(ip).To4()}
	var took time.Duration
	err := ns.WithNetNSPath(n.NetNSPath, func(ns.NetNS) error {
		for {
			now := time.Now()
			done := true
			for set, in := range want {
				got, err := netlink.IpsetTest(set, entry)
				if err != nil {
					got = false // missing set (a swap in progress): not yet
				}
				if got != in {
					done = false
					break
				}
			}
			if done {
				took = now.Sub(start)
				return nil
			}
			if time.Since(start) > timeout {
				return fmt.Errorf("%s: after %v the sets of %s are still not %v", n.Name, timeout, ip, want)
			}
			time.Sleep(pfPollEvery)
		}
	})
	return took, err
}

// pfBuildTraffic builds integration/cmd/netpol-traffic into a temporary
// directory.
func pfBuildTraffic(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "netpol-traffic")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goTool, "build", "-o", bin, "./cmd/netpol-traffic").CombinedOutput()
	if err != nil {
		b.Fatalf("build netpol-traffic: %v\n%s", err, out)
	}
	return bin
}

// pfServe starts argv in pod p and waits until it prints a line starting
// with ready. It is killed when the benchmark ends.
func pfServe(b *testing.B, p *node.Pod, ready string, argv ...string) {
	b.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.NetNS}, argv...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if strings.HasPrefix(strings.TrimSpace(line), ready) || err != nil {
				lines <- line
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
	}()
	select {
	case line := <-lines:
		if !strings.HasPrefix(strings.TrimSpace(line), ready) {
			b.Fatalf("%v in %s: exited before %q", argv, p.Label(), ready)
		}
	case <-time.After(30 * time.Second):
		b.Fatalf("%v in %s: no %q after 30s", argv, p.Label(), ready)
	}
}

// pfIperf runs `iperf3 -c to -p port -t d -J` in pod p (one TCP stream)
// and returns the bits per second the receiver counted.
func pfIperf(p *node.Pod, to string, port int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	secs := strconv.Itoa(max(1, int(d.Seconds())))
	out, err := p.Exec(ctx, "iperf3", "-c", to, "-p", strconv.Itoa(port), "-t", secs, "-J")
	if err != nil {
		return 0, fmt.Errorf("iperf3 in %s: %w\n%s", p.Label(), err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.End.SumReceived.BitsPerSecond <= 0 {
		return 0, fmt.Errorf("iperf3 in %s: unexpected output (%v):\n%s", p.Label(), err, out)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

// pfRun runs `netpol-traffic MODE -to ADDR:PORT -for D` in pod p and
// returns the rate it reports (connections or bits per second).
func pfRun(p *node.Pod, bin, mode, to string, port int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := p.Exec(ctx, bin, mode, "-to", net.JoinHostPort(to, strconv.Itoa(port)), "-for", d.String())
	if err != nil {
		return 0, fmt.Errorf("netpol-traffic %s in %s: %w\n%s", mode, p.Label(), err, out)
	}
	var what string
	var count, secs float64
	if _, err := fmt.Sscanf(string(out), "%s %g seconds %g", &what, &count, &secs); err != nil || secs <= 0 {
		return 0, fmt.Errorf("netpol-traffic %s in %s: unexpected output %q", mode, p.Label(), out)
	}
	if what == "bytes" {
		count *= 8
	}
	return count / secs, nil
}
