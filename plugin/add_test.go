package plugin

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/netpol/netpol/conf"
)

// TestResultIPs takes prevResults as the chains netpol follows print them
// (bridge with cniVersion 1.0.0, flannel delegating to bridge with 0.4.0
// and 0.3.1, a bare IPAM result with no interfaces) through conf.Parse, as
// ADD does, and checks which addresses are the pod's.
func TestResultIPs(t *testing.T) {
	bridge := `"interfaces":[{"name":"cni0","mac":"aa:bb:cc:dd:ee:01"},{"name":"veth1","mac":"aa:bb:cc:dd:ee:02"},` +
		`{"name":"eth0","mac":"aa:bb:cc:dd:ee:03","sandbox":"/var/run/netns/p"}]`
	tests := []struct {
		name, version, result string
		want                  []string
		says                  string // in the error, when want is nil
	}{
		{"bridge 1.0.0", "1.0.0", bridge + `,"ips":[{"interface":2,"address":"10.244.1.5/24"},` +
			`{"interface":2,"address":"fd00::5/64"}]`, []string{"10.244.1.5", "fd00::5"}, ""},
		{"flannel 0.4.0", "0.4.0", bridge + `,"ips":[{"version":"4","interface":2,"address":"10.244.1.5/24","gateway":"10.244.1.1"}]`,
			[]string{"10.244.1.5"}, ""},
		{"flannel 0.3.1", "0.3.1", bridge + `,"ips":[{"version":"4","interface":2,"address":"10.244.1.5/24"}]`,
			[]string{"10.244.1.5"}, ""},
		{"no interface index", "0.4.0", `"ips":[{"version":"4","address":"10.244.1.5/24"}]`, []string{"10.244.1.5"}, ""},
		{"one of two on the host", "1.0.0", bridge + `,"ips":[{"interface":1,"address":"10.9.0.1/24"},` +
			`{"interface":2,"address":"10.244.1.5/24"}]`, []string{"10.244.1.5"}, ""},
		{"IPv4-mapped normalised", "1.0.0", bridge + `,"ips":[{"interface":2,"address":"::ffff:10.244.1.5/120"},` +
			`{"interface":2,"address":"fd00::5/64"}]`, []string{"10.244.1.5", "fd00::5"}, ""},
		{"IPv4-mapped twin listed once", "1.0.0", bridge + `,"ips":[{"interface":2,"address":"10.244.1.5/24"},` +
			`{"interface":2,"address":"::ffff:10.244.1.5/120"}]`, []string{"10.244.1.5"}, ""},
		{"ips empty", "1.0.0", bridge + `,"ips":[]`, nil, "prevResult.ips is empty"},
		{"no ips", "0.4.0", bridge, nil, "prevResult.ips is empty"},
		{"only on the host", "1.0.0", bridge + `,"ips":[{"interface":0,"address":"10.244.1.1/24"},` +
			`{"interface":1,"address":"10.244.1.9/24"}]`, nil,
			`ips[0] 10.244.1.1/24 is on interface 0 "cni0", which is not in the sandbox; ips[1] 10.244.1.9/24 is on interface 1 "veth1"`},
		{"other sandbox interface", "1.0.0", `"interfaces":[{"name":"net1","sandbox":"/var/run/netns/p"}],` +
			`"ips":[{"interface":0,"address":"10.244.1.5/24"}]`, nil, `is on interface 0 "net1", not "eth0"`},
		{"index out of range", "1.0.0", bridge + `,"ips":[{"interface":3,"address":"10.244.1.5/24"}]`, nil,
			"names interface 3, but prevResult.interfaces has 3"},
		{"unspecified", "1.0.0", `"ips":[{"address":"0.0.0.0/0"}]`, nil, "ips[0] 0.0.0.0/0 is unspecified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdin := fmt.Sprintf(`{"cniVersion":%q,"name":"n","type":"netpol","prevResult":{"cniVersion":%q,%s}}`,
				tt.version, tt.version, tt.result)
			nc, err := conf.Parse([]byte(stdin), true)
			if err != nil {
				t.Fatalf("conf.Parse: %v", err)
			}
			got, err := resultIPs(nc.PrevResult, "eth0")
			switch {
			case tt.want != nil && err != nil:
				t.Fatalf("resultIPs: %v, want %v", err, tt.want)
			case tt.want != nil && !slices.Equal(got, tt.want):
				t.Errorf("resultIPs = %v, want %v", got, tt.want)
			case tt.want == nil && (err == nil || !strings.Contains(err.Error(), tt.says)):
				t.Errorf("resultIPs = %v, %v; want an error saying %q", got, err, tt.says)
			}
		})
	}
}
