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
