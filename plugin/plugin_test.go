package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
)

// These tests drive the plugin's verbs in-process with injected stdin and
// stdout, against the real kernel of a throwaway network namespace (no
// agent, no other plugin): ADD twice, CHECK, DEL twice, and bad input.

const prevResult = `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],
"ips":[{"interface":0,"address":"10.244.1.5/24","gateway":"10.244.1.1"}]}`

type fixture struct {
	t       *testing.T
	netns   ns.NetNS
	dataDir string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(); _ = testutils.UnmountNS(n) })
	return &fixture{t: t, netns: n, dataDir: t.TempDir()}
}

func (f *fixture) stdin(extra string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"test","type":"netpol","dataDir":%q,"logFile":"-"%s,"prevResult":%s}`,
		f.dataDir, extra, prevResult))
}

// call runs one verb inside the namespace and returns its stdout.
func (f *fixture) call(verb func(*Plugin) func(*skel.CmdArgs) error, containerID, cniArgs string, stdin []byte) (string, error) {
	var out bytes.Buffer
	p := Default()
	p.Stdout = &out
	args := &skel.CmdArgs{ContainerID: containerID, Netns: f.netns.Path(), IfName: "eth0", Args: cniArgs, StdinData: stdin}
	err := f.netns.Do(func(ns.NetNS) error { return verb(p)(args) })
	return out.String(), err
}

func (f *fixture) ipsetList() string {
	f.t.Helper()
	var out []byte
	_ = f.netns.Do(func(ns.NetNS) error {
		var err error
		out, err = exec.Command("ipset", "list").CombinedOutput()
		if err != nil {
			f.t.Fatalf("ipset list: %v\n%s", err, out)
		}
		return nil
	})
	return string(out)
}

const podArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=a"

func add(p *Plugin) func(*skel.CmdArgs) error   { return p.Add }
func del(p *Plugin) func(*skel.CmdArgs) error   { return p.Del }
func check(p *Plugin) func(*skel.CmdArgs) error { return p.Check }

func TestAddTwiceCheckDelTwice(t *testing.T) {
	f := newFixture(t)
	var want map[string]any
	if err := json.Unmarshal([]byte(prevResult), &want); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		out, err := f.call(add, "c1", podArgs, f.stdin(""))
		if err != nil {
			t.Fatalf("ADD %d: %v", i+1, err)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("ADD %d printed %q, not a result: %v", i+1, out, err)
		}
		if fmt.Sprint(got["ips"]) != fmt.Sprint(want["ips"]) || fmt.Sprint(got["interfaces"]) != fmt.Sprint(want["interfaces"]) {
			t.Errorf("ADD %d result %v, want prevResult unchanged %v", i+1, got, want)
		}
	}
	// No agent has synced: the pod is denied until one does.
	if l := f.ipsetList(); strings.Count(l, "10.244.1.5") != 1 || !strings.Contains(l, "Name: NETPOL4-DENY") {
		t.Errorf("after ADD twice the address must be in NETPOL4-DENY exactly once:\n%s", l)
	}
	if _, err := f.call(check, "c1", podArgs, f.stdin("")); err != nil {
		t.Errorf("CHECK after ADD: %v", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := f.call(del, "c1", podArgs, f.stdin("")); err != nil {
			t.Errorf("DEL %d: %v", i+1, err)
		}
	}
	if l := f.ipsetList(); strings.Contains(l, "10.244.1.5") {
		t.Errorf("after DEL the address is still in a set:\n%s", l)
	}
	_, err := f.call(check, "c1", podArgs, f.stdin(""))
	if err == nil || !strings.Contains(err.Error(), "no record of container c1") {
		t.Errorf("CHECK after DEL: %v, want an error saying there is no record", err)
	}
}

func TestBadInputNamesTheField(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, extra, args string
		code              uint
		says              string
	}{
		{"iptablesMode", `,"iptablesMode":"foo"`, podArgs, types.ErrDecodingFailure, `"iptablesMode": "foo"`},
		{"relative dataDir", `,"dataDir":"var/lib"`, podArgs, types.ErrDecodingFailure, `dataDir`},
		{"pod name missing", "", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default", types.ErrInvalidEnvironmentVariables, "K8S_POD_NAME"},
		{"pod name a command", "", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$(touch x)",
			types.ErrInvalidEnvironmentVariables, `K8S_POD_NAME: "$(touch x)"`},
		{"pod name 254 characters", "", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + strings.Repeat("a", 254),
			types.ErrInvalidEnvironmentVariables, "K8S_POD_NAME"},
		{"namespace not a label", "", "IgnoreUnknown=1;K8S_POD_NAMESPACE=a.b;K8S_POD_NAME=a",
			types.ErrInvalidEnvironmentVariables, `K8S_POD_NAMESPACE: "a.b"`},
	}
	for _, tc := range cases {
		stdin := f.stdin(tc.extra)
		if strings.Contains(tc.extra, "dataDir") { // the later key wins in Go's decoder
			stdin = []byte(strings.Replace(string(stdin), fmt.Sprintf(`"dataDir":%q,`, f.dataDir), "", 1))
		}
		out, err := f.call(add, "c2", tc.args, stdin)
		var e *types.Error
		if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Error(), tc.says) {
			t.Errorf("%s: got %v (%T), want CNI error %d naming %s", tc.name, err, err, tc.code, tc.says)
		}
		if out != "" {
			t.Errorf("%s: printed %q on stdout; only a result may go there", tc.name, out)
		}
	}
	if _, err := os.Stat(f.dataDir + "/pods/c2@eth0.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rejected ADD must record nothing: %v", err)
	}
}

// An ADD whose prevResult gives the pod no address is an error naming
// prevResult, and records and installs nothing.
func TestAddRejectsPrevResultWithoutPodAddress(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ name, result, says string }{
		{"ips empty", `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[]}`,
			"prevResult.ips is empty"},
		{"only on the host", `{"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/var/run/netns/x"}],` +
			`"ips":[{"interface":0,"address":"10.244.1.1/24"}]}`, `ips[0] 10.244.1.1/24 is on interface 0 "cni0", which is not in the sandbox`},
	} {
		stdin := strings.Replace(string(f.stdin("")), prevResult, tc.result, 1)
		out, err := f.call(add, "c3", podArgs, []byte(stdin))
		var e *types.Error
		if !errors.As(err, &e) || !strings.Contains(e.Error(), tc.says) {
			t.Errorf("%s: ADD = %v, want a CNI error saying %q", tc.name, err, tc.says)
		}
		if out != "" {
			t.Errorf("%s: printed %q on stdout", tc.name, out)
		}
	}
	if _, err := os.Stat(f.dataDir + "/pods/c3@eth0.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rejected ADD must record nothing: %v", err)
	}
	if l := f.ipsetList(); strings.Contains(l, "NETPOL") {
		t.Errorf("a rejected ADD must install nothing:\n%s", l)
	}
}

// Re-adding a running pod's container under a name the API server would
// reject changes nothing: the record and the sets stay as they were. DEL
// under such a name still cleans up what ADD made, and succeeds for a
// container that was never added.
func TestBadPodNameChangesNothing(t *testing.T) {
	f := newFixture(t)
	if _, err := f.call(add, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	record := f.dataDir + "/pods/c1@eth0.json"
	before, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	sets := f.ipsetList()
	for _, bad := range []string{"K8S_POD_NAMESPACE=default;K8S_POD_NAME=$(touch x)", "K8S_POD_NAMESPACE=a;b;K8S_POD_NAME=a",
		"K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + strings.Repeat("a", 254), "K8S_POD_NAMESPACE=Default;K8S_POD_NAME=a"} {
		if _, err := f.call(add, "c1", bad, f.stdin("")); err == nil {
			t.Errorf("re-ADD with CNI_ARGS %q succeeded", bad)
		}
		if after, _ := os.ReadFile(record); !bytes.Equal(after, before) {
			t.Errorf("re-ADD with CNI_ARGS %q changed the record:\n%s\nwas\n%s", bad, after, before)
		}
		if l := f.ipsetList(); l != sets {
			t.Errorf("re-ADD with CNI_ARGS %q changed the sets:\n%s\nwere\n%s", bad, l, sets)
		}
	}
	bad := "K8S_POD_NAMESPACE=default;K8S_POD_NAME=$(touch x)"
	if _, err := f.call(del, "never-added", bad, f.stdin("")); err != nil {
		t.Errorf("DEL of a container never added, with a bad name: %v", err)
	}
	if l := f.ipsetList(); l != sets {
		t.Errorf("DEL of a container never added changed the sets:\n%s\nwere\n%s", l, sets)
	}
	if _, err := f.call(del, "c1", bad, f.stdin("")); err != nil {
		t.Errorf("DEL of an added container, with a bad name: %v", err)
	}
	if _, err := os.Stat(record); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DEL left the record: %v", err)
	}
	if l := f.ipsetList(); strings.Contains(l, "10.244.1.5") {
		t.Errorf("DEL with a bad name left the address in a set:\n%s", l)
	}
}

// setSysctl writes a sysctl inside the fixture's namespace (never the
// root namespace's).
func (f *fixture) setSysctl(name, value string) {
	f.t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	if err := f.netns.Do(func(ns.NetNS) error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		f.t.Fatal(err)
	}
}

// ADD fails with code 50, saying what to set, and records and installs
// nothing while bridged traffic of one of the pod's families bypasses
// iptables in its namespace; a family the pod has no address of does not
// matter.
func TestAddNeedsBridgeNFCall(t *testing.T) {
	f := newFixture(t)
	const dual = `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],` +
		`"ips":[{"interface":0,"address":"10.244.1.6/24"},{"interface":0,"address":"fd00::6/64"}]}`
	for _, tc := range []struct{ off, result, sysctl string }{
		{"net.bridge.bridge-nf-call-iptables", prevResult, "net.bridge.bridge-nf-call-iptables"},
		{"net.bridge.bridge-nf-call-ip6tables", dual, "net.bridge.bridge-nf-call-ip6tables"},
	} {
		f.setSysctl(tc.off, "0")
		stdin := strings.Replace(string(f.stdin("")), prevResult, tc.result, 1)
		out, err := f.call(add, "c4", podArgs, []byte(stdin))
		var e *types.Error
		if !errors.As(err, &e) || e.Code != 50 || !strings.Contains(e.Error(), tc.sysctl+" is 0 in this network namespace") ||
			!strings.Contains(e.Error(), "set it to 1") {
			t.Errorf("ADD with %s=0: %v, want CNI error 50 saying to set it to 1", tc.off, err)
		}
		if out != "" {
			t.Errorf("ADD with %s=0 printed %q", tc.off, out)
		}
		if _, err := os.Stat(f.dataDir + "/pods/c4@eth0.json"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ADD with %s=0 recorded the pod: %v", tc.off, err)
		}
		if l := f.ipsetList(); strings.Contains(l, "NETPOL") {
			t.Errorf("ADD with %s=0 installed sets:\n%s", tc.off, l)
		}
		f.setSysctl(tc.off, "1")
	}
	f.setSysctl("net.bridge.bridge-nf-call-ip6tables", "0")
	if _, err := f.call(add, "c4", podArgs, f.stdin("")); err != nil {
		t.Errorf("ADD of an IPv4-only pod with only bridge-nf-call-ip6tables=0: %v", err)
	}
}

// run runs a command inside the namespace and fails the test on error.
func (f *fixture) run(name string, args ...string) {
	f.t.Helper()
	_ = f.netns.Do(func(ns.NetNS) error {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			f.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return nil
	})
}

// TestCheckFindsWhatIsMissing: before any agent, CHECK of a pod fails when
// its DENY entry, our FORWARD hook or a rule of a fixed chain is gone, names
// what is missing, and passes again once ADD has put it back.
func TestCheckFindsWhatIsMissing(t *testing.T) {
	f := newFixture(t)
	if _, err := f.call(add, "c1", podArgs, f.stdin("")); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	for _, tc := range []struct {
		name string
		cmd  []string
		says string
	}{
		{"DENY entry", []string{"ipset", "del", "NETPOL4-DENY", "10.244.1.5"}, "set NETPOL4-DENY has no entry 10.244.1.5"},
		{"FORWARD hook", []string{"iptables", "-w", "-D", "FORWARD", "1"}, "hook missing from FORWARD"},
		{"dispatch rule", []string{"iptables", "-w", "-F", "NETPOL-INGRESS"}, "chain NETPOL-INGRESS: missing rule"},
	} {
		if _, err := f.call(check, "c1", podArgs, f.stdin("")); err != nil {
			t.Fatalf("%s: CHECK before removing it: %v", tc.name, err)
		}
		f.run(tc.cmd[0], tc.cmd[1:]...)
		_, err := f.call(check, "c1", podArgs, f.stdin(""))
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s removed: CHECK = %v, want an error saying %q", tc.name, err, tc.says)
		}
		if _, err := f.call(add, "c1", podArgs, f.stdin("")); err != nil {
			t.Fatalf("%s: ADD again: %v", tc.name, err)
		}
	}
	if _, err := f.call(check, "c1", podArgs, f.stdin("")); err != nil {
		t.Errorf("CHECK after the last repair: %v", err)
	}
}
