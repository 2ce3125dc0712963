package conf

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse feeds arbitrary stdin to Parse. An accepted config must survive
// a round trip: rendered back to JSON (prevResult in its own version) and
// parsed again, it gives the same fields and the same prevResult.
func FuzzParse(f *testing.F) {
	for _, v := range supportedVersions {
		f.Add(config(v, "", ""))
		f.Add(config(v, "", prevResult040))
		f.Add(config(v, "", prevResult100))
	}
	f.Add(config("1.0.0", `,"dataDir":"/run/netpol","iptablesMode":"nft","logFile":"-"`, prevResult100))
	f.Add(config("1.0.0", `,"dataDir":"relative"`, ""))
	f.Add([]byte(`{"cniVersion":"1.0.0","type":"netpol","prevResult":{"ips":[{"address":"x"}]}}`))
	f.Add([]byte(`{"cniVersion":1}`))
	f.Fuzz(func(t *testing.T, stdin []byte) {
		c, err := Parse(stdin, false)
		if err != nil {
			return
		}
		again, err := Parse(renderConf(t, c), false)
		if err != nil {
			t.Fatalf("accepted config does not parse again: %v\ninput: %q", err, stdin)
		}
		type fields struct{ V, Name, Type, DataDir, Mode, Log string }
		pick := func(n *NetConf) fields {
			return fields{n.CNIVersion, n.Name, n.Type, n.DataDir, n.IPTablesMode, n.LogFile}
		}
		if diff := cmp.Diff(pick(c), pick(again)); diff != "" {
			t.Errorf("round trip changed the config (-first +second):\n%s", diff)
		}
		if !bytes.Equal(resultJSON(t, c), resultJSON(t, again)) {
			t.Errorf("round trip changed prevResult:\n%s\n%s", resultJSON(t, c), resultJSON(t, again))
		}
	})
}

// renderConf renders a parsed config as stdin, prevResult at the config's
// cniVersion the way a runtime passes it.
func renderConf(t *testing.T, c *NetConf) []byte {
	t.Helper()
	m := map[string]any{
		"cniVersion": c.CNIVersion, "name": c.Name, "type": c.Type,
		"dataDir": c.DataDir, "iptablesMode": c.IPTablesMode, "logFile": c.LogFile,
	}
	if c.PrevResult != nil {
		r, err := c.PrevResult.GetAsVersion(c.CNIVersion)
		if err != nil {
			t.Fatalf("accepted prevResult cannot be rendered at %s: %v", c.CNIVersion, err)
		}
		m["prevResult"] = r
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out
}

func resultJSON(t *testing.T, c *NetConf) []byte {
	t.Helper()
	if c.PrevResult == nil {
		return nil
	}
	out, err := json.Marshal(c.PrevResult)
	if err != nil {
		t.Fatalf("marshal prevResult: %v", err)
	}
	return out
}

// FuzzParsePodArgs feeds arbitrary CNI_ARGS to ParsePodArgs. Accepted
// arguments, rendered back in the runtime's layout, parse to the same value.
func FuzzParsePodArgs(f *testing.F) {
	f.Add("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1234")
	f.Add("K8S_POD_NAMESPACE=default;K8S_POD_NAME=db")
	f.Add("K8S_POD_NAMESPACE=default;K8S_POD_NAME=db;OTHER=x")
	f.Add("K8S_POD_NAMESPACE=;K8S_POD_NAME=db")
	f.Add("IgnoreUnknown=true;;K8S_POD_NAME=a=b")
	f.Fuzz(func(t *testing.T, cniArgs string) {
		args, err := ParsePodArgs(cniArgs)
		if err != nil {
			return
		}
		rendered := "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + args.Namespace + ";K8S_POD_NAME=" + args.Name +
			";K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1234"
		again, err := ParsePodArgs(rendered)
		if err != nil {
			t.Fatalf("accepted %q, rendered %q does not parse: %v", cniArgs, rendered, err)
		}
		if diff := cmp.Diff(args, again); diff != "" {
			t.Errorf("round trip of %q changed the pod (-first +second):\n%s", cniArgs, diff)
		}
	})
}

// An IP entry of prevResult without an address, or a route without a
// destination (both found by FuzzParse), is rejected, naming the field,
// instead of leaving the pod without addresses or passing on a result that
// does not parse.
func TestParsePrevResultMissingAddress(t *testing.T) {
	for prev, want := range map[string]string{
		`{"ips":[{"address":"10.0.0.1/24"},{}]}`:             `"prevResult.ips[1].address": is missing`,
		`{"routes":[{"dst":"0.0.0.0/0"},{"gw":"10.0.0.1"}]}`: `"prevResult.routes[1].dst": is missing`,
	} {
		_, err := Parse([]byte(`{"cniVersion":"1.0.0","type":"netpol","prevResult":`+prev+`}`), true)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(prevResult %s) = %v, want an error with %s", prev, err, want)
		}
	}
}
