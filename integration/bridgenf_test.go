package integration

// br_netfilter's switch off in a node namespace: bridged traffic would
// bypass every rule, so the plugin's ADD fails saying what to set (through
// the real bridge -> host-local -> netpol chain), and the long-running
// agent reports it in /readyz, a metric and its log. Each test changes the
// sysctl in its own node namespace only.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/netpol/netpol/integration/node"
)

func TestAddFailsWhileBridgeNFCallOff(t *testing.T) {
	n := newNode(t, node.Options{Subnet6: "fd00:10:244:1::/64"}) // dual-stack: both switches matter
	for _, sysctl := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
		execIn(t, n, "sysctl", "-q", "-w", sysctl+"=0")
		_, err := n.AddPod("default", "a")
		var cniErr *types.Error
		switch {
		case err == nil:
			t.Errorf("ADD with %s=0 succeeded", sysctl)
		case !errors.As(err, &cniErr) || cniErr.Code != 50:
			t.Errorf("ADD with %s=0: %v, want CNI error 50", sysctl, err)
		case !strings.Contains(err.Error(), sysctl+" is 0 in this network namespace") ||
			!strings.Contains(err.Error(), "set it to 1 (sysctl -w "+sysctl+"=1)"):
			t.Errorf("ADD with %s=0 does not say what to set: %v", sysctl, err)
		default:
			t.Logf("ADD says: %v", err)
		}
		if got := podRecords(t, n); len(got) != 0 {
			t.Errorf("ADD with %s=0 recorded %v", sysctl, got)
		}
		for name := range nodeSets(t, n) {
			if strings.HasPrefix(name, "NETPOL") {
				t.Errorf("ADD with %s=0 created set %s", sysctl, name)
			}
		}
		if save := iptablesSave(t, n); strings.Contains(save, "NETPOL") {
			t.Errorf("ADD with %s=0 installed rules:\n%s", sysctl, save)
		}
		execIn(t, n, "sysctl", "-q", "-w", sysctl+"=1")
	}
	// Both on again: the pod is added, and denied until an agent knows it.
	pods := addServingPods(t, n, "default/a", "default/b")
	if got, want := nodeSets(t, n)["NETPOL4-DENY"], sortedCopy([]string{pods[0].IP, pods[1].IP}); !slices.Equal(got, want) {
		t.Errorf("NETPOL4-DENY = %v, want %v", got, want)
	}
	expectMatrix(t, "added with both switches on, no agent", pods, pods)
}

func TestAgentReportsBridgeNFCall(t *testing.T) {
	n := newNode(t, node.Options{})
	dir := t.TempDir()
	writeManifest(t, dir, "10-pods.yaml", podsYAML(map[string]string{"default/a": ""}))
	a, err := n.StartAgent("--manifests", dir, "--node-name", n.Name, "--metrics-addr", "127.0.0.1:0",
		"--repair-interval", "200ms")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		m := regexp.MustCompile(`msg="serving metrics and health checks" addr=(\S+)`).FindStringSubmatch(a.Output())
		if m == nil {
			return 0, ""
		}
		code, body, err := httpGetIn(n.NetNSPath, "http://"+m[1]+path)
		if err != nil {
			return 0, err.Error()
		}
		return code, body
	}
	const gauge4 = `netpol_bridge_nf_call{family="ipv4"} `
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if _, ok := waitFor(10*time.Second, 50*time.Millisecond, cond); !ok {
			t.Fatalf("agent pid %d: %s not within 10s:\n%s", a.PID, what, a.Output())
		}
	}
	waitFor("ready", func() bool { code, _ := get("/readyz"); return code == 200 })
	if _, body := get("/metrics"); !strings.Contains(body, gauge4+"1") {
		t.Errorf("/metrics lacks %q", gauge4+"1")
	}

	execIn(t, n, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0")
	waitFor("/readyz 503", func() bool { code, _ := get("/readyz"); return code == 503 })
	if _, body := get("/readyz"); !strings.Contains(body, "net.bridge.bridge-nf-call-iptables is 0") ||
		!strings.Contains(body, "set it to 1") {
		t.Errorf("/readyz does not say what to set: %q", body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, gauge4+"0") {
		t.Errorf("/metrics lacks %q while the switch is off", gauge4+"0")
	}
	if out := a.Output(); !strings.Contains(out, `level=WARN msg="bridged traffic bypasses policy" family=ipv4`) {
		t.Errorf("agent did not warn that bridged traffic bypasses policy:\n%s", out)
	}

	execIn(t, n, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
	waitFor("ready again", func() bool { code, _ := get("/readyz"); return code == 200 })
	if _, body := get("/metrics"); !strings.Contains(body, gauge4+"1") {
		t.Errorf("/metrics lacks %q once the switch is back on", gauge4+"1")
	}
	if c := strings.Count(a.Output(), "bridged traffic bypasses policy"); c != 1 {
		t.Errorf("agent warned %d times, want once when the switch turned off:\n%s", c, a.Output())
	}
	if err := a.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// httpGetIn does GET url from inside the network namespace at netnsPath.
func httpGetIn(netnsPath, url string) (int, string, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
				var err error
				c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(body), err
}

// TestAddChecksTheSwitchesOfItsFamilies: ADD checks the br_netfilter switch
// of each family the pod has an address of: an IPv6-only pod is refused
// while bridge-nf-call-ip6tables is off, an IPv4-only pod is not (its
// traffic never meets ip6tables), and the IPv6-only pod is added once the
// switch is back on.
func TestAddChecksTheSwitchesOfItsFamilies(t *testing.T) {
	const sysctl = "net.bridge.bridge-nf-call-ip6tables"
	for _, tc := range []struct {
		fam     node.Family
		refused bool
	}{{node.IPv6, true}, {node.IPv4, false}} {
		t.Run(string(tc.fam), func(t *testing.T) {
			n := newNode(t, node.Options{Family: tc.fam})
			execIn(t, n, "sysctl", "-q", "-w", sysctl+"=0")
			_, err := n.AddPod("default", "a")
			var cniErr *types.Error
			switch {
			case tc.refused && (!errors.As(err, &cniErr) || cniErr.Code != 50 || !strings.Contains(err.Error(), sysctl+" is 0")):
				t.Errorf("ADD of an %s pod with %s=0: %v, want CNI error 50 naming it", tc.fam, sysctl, err)
			case !tc.refused && err != nil:
				t.Errorf("ADD of an %s pod with %s=0: %v, want success", tc.fam, sysctl, err)
			}
			execIn(t, n, "sysctl", "-q", "-w", sysctl+"=1")
			if _, err := n.AddPod("default", "b"); err != nil {
				t.Errorf("ADD of an %s pod with %s=1: %v", tc.fam, sysctl, err)
			}
		})
	}
}
