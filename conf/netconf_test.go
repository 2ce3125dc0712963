package conf

import (
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/google/go-cmp/cmp"
)

// prevResult040 is what the bridge plugin prints for cniVersion 0.3.1/0.4.0:
// every IP carries "version".
const prevResult040 = `{
  "cniVersion": "%s",
  "interfaces": [
    {"name": "cni0", "mac": "0a:58:0a:f4:00:01"},
    {"name": "veth1234", "mac": "9e:4b:1f:00:00:01"},
    {"name": "eth0", "mac": "0a:58:0a:f4:00:05", "sandbox": "/var/run/netns/p1"}
  ],
  "ips": [
    {"version": "4", "interface": 2, "address": "10.244.0.5/24", "gateway": "10.244.0.1"}
  ],
  "routes": [{"dst": "0.0.0.0/0"}],
  "dns": {}
}`

// prevResult100 is the 1.x form: no "version" in ips.
const prevResult100 = `{
  "cniVersion": "%s",
  "interfaces": [
    {"name": "cni0", "mac": "0a:58:0a:f4:00:01"},
    {"name": "eth0", "mac": "0a:58:0a:f4:00:05", "sandbox": "/var/run/netns/p1"}
  ],
  "ips": [
    {"interface": 1, "address": "10.244.0.5/24", "gateway": "10.244.0.1"},
    {"interface": 1, "address": "fd00:10:244::5/64"}
  ]
}`

// config builds a netpol config with the given cniVersion, extra fields
// (already JSON, comma-led) and an optional prevResult template.
func config(ver, extra, prev string) []byte {
	s := `{"cniVersion":"` + ver + `","name":"k8s-pod-network","type":"netpol"` + extra
	if prev != "" {
		s += `,"prevResult":` + strings.ReplaceAll(prev, "%s", ver)
	}
	return []byte(s + "}")
}

func TestParseVersionsWithPrevResult(t *testing.T) {
	tests := []struct {
		version string
		prev    string
		wantIPs []string
	}{
		{"0.3.1", prevResult040, []string{"10.244.0.5/24"}},
		{"0.4.0", prevResult040, []string{"10.244.0.5/24"}},
		{"1.0.0", prevResult100, []string{"10.244.0.5/24", "fd00:10:244::5/64"}},
		{"1.1.0", prevResult100, []string{"10.244.0.5/24", "fd00:10:244::5/64"}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			got, err := Parse(config(tt.version, "", tt.prev), true)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.CNIVersion != tt.version {
				t.Errorf("CNIVersion = %q, want %q", got.CNIVersion, tt.version)
			}
			if got.PrevResult == nil {
				t.Fatal("PrevResult is nil")
			}
			var ips []string
			for _, ip := range got.PrevResult.IPs {
				ips = append(ips, ip.Address.String())
			}
			if diff := cmp.Diff(tt.wantIPs, ips); diff != "" {
				t.Errorf("prevResult IPs (-want +got):\n%s", diff)
			}
			if got.PrevResult.CNIVersion != types100.ImplementedSpecVersion {
				t.Errorf("PrevResult.CNIVersion = %q, want %q",
					got.PrevResult.CNIVersion, types100.ImplementedSpecVersion)
			}
		})
	}
}

func TestParsePrevResultDetails(t *testing.T) {
	got, err := Parse(config("0.4.0", "", prevResult040), true)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	iface := 2
	want := &types100.Result{
		CNIVersion: "1.1.0",
		Interfaces: []*types100.Interface{
			{Name: "cni0", Mac: "0a:58:0a:f4:00:01"},
			{Name: "veth1234", Mac: "9e:4b:1f:00:00:01"},
			{Name: "eth0", Mac: "0a:58:0a:f4:00:05", Sandbox: "/var/run/netns/p1"},
		},
		IPs: []*types100.IPConfig{{
			Interface: &iface,
			Address:   net.IPNet{IP: net.IPv4(10, 244, 0, 5).To4(), Mask: net.CIDRMask(24, 32)},
			Gateway:   net.IPv4(10, 244, 0, 1),
		}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}},
	}
	if diff := cmp.Diff(want, got.PrevResult); diff != "" {
		t.Errorf("PrevResult (-want +got):\n%s", diff)
	}
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		want  [3]string // dataDir, iptablesMode, logFile
	}{
		{"all defaults", "", [3]string{"/var/lib/netpol", "auto", "/var/lib/netpol/netpol.log"}},
		{"dataDir moves log", `,"dataDir":"/run/np"`, [3]string{"/run/np", "auto", "/run/np/netpol.log"}},
		{"stderr log", `,"logFile":"-"`, [3]string{"/var/lib/netpol", "auto", "-"}},
		{"explicit", `,"dataDir":"/d","iptablesMode":"legacy","logFile":"/var/log/np.log"`,
			[3]string{"/d", "legacy", "/var/log/np.log"}},
		{"nft", `,"iptablesMode":"nft"`, [3]string{"/var/lib/netpol", "nft", "/var/lib/netpol/netpol.log"}},
		{"unknown fields allowed", `,"futureKnob":true,"capabilities":{"portMappings":true}`,
			[3]string{"/var/lib/netpol", "auto", "/var/lib/netpol/netpol.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(config("1.0.0", tt.extra, ""), false)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if gotF := [3]string{got.DataDir, got.IPTablesMode, got.LogFile}; gotF != tt.want {
				t.Errorf("got %q, want %q", gotF, tt.want)
			}
			if got.PrevResult != nil {
				t.Errorf("PrevResult = %v, want nil", got.PrevResult)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name         string
		stdin        string
		requirePrev  bool
		wantContains []string
	}{
		{"empty cniVersion", `{"type":"netpol"}`, false,
			[]string{`field "cniVersion": "" is not one of 0.3.1, 0.4.0, 1.0.0, 1.1.0`}},
		{"old cniVersion", `{"cniVersion":"0.2.0","type":"netpol"}`, false,
			[]string{`field "cniVersion": "0.2.0"`}},
		{"future cniVersion", `{"cniVersion":"2.0.0","type":"netpol"}`, false,
			[]string{`field "cniVersion": "2.0.0"`}},
		{"wrong type", `{"cniVersion":"1.0.0","type":"bridge"}`, false,
			[]string{`field "type": "bridge" is not "netpol"`}},
		{"relative dataDir", `{"cniVersion":"1.0.0","type":"netpol","dataDir":"var/lib"}`, false,
			[]string{`field "dataDir": "var/lib"`}},
		{"unclean dataDir", `{"cniVersion":"1.0.0","type":"netpol","dataDir":"/var/lib/../x/"}`, false,
			[]string{`field "dataDir": "/var/lib/../x/"`}},
		{"bad iptablesMode", `{"cniVersion":"1.0.0","type":"netpol","iptablesMode":"foo"}`, false,
			[]string{`netpol config: field "iptablesMode": "foo" is not one of auto, nft, legacy`}},
		{"relative logFile", `{"cniVersion":"1.0.0","type":"netpol","logFile":"np.log"}`, false,
			[]string{`field "logFile": "np.log"`}},
		{"dataDir not a string", `{"cniVersion":"1.0.0","type":"netpol","dataDir":5}`, false,
			[]string{`field "dataDir"`, "number"}},
		{"not JSON", `{"cniVersion":`, false, []string{"netpol config: invalid JSON"}},
		{"dropLog rate too high", `{"cniVersion":"1.0.0","type":"netpol","dropLog":{"rate":20000}}`, false,
			[]string{`field "dropLog.rate": "20000"`}},
		{"dropLog burst 0", `{"cniVersion":"1.0.0","type":"netpol","dropLog":{"burst":0}}`, false,
			[]string{`field "dropLog.burst": "0"`}},
		{"dropLog group out of range", `{"cniVersion":"1.0.0","type":"netpol","dropLog":{"group":70000}}`, false,
			[]string{`field "dropLog.group"`}},
		{"missing prevResult", `{"cniVersion":"1.0.0","type":"netpol"}`, true,
			[]string{`field "prevResult": is missing`}},
		{"prevResult bad IP", `{"cniVersion":"1.0.0","type":"netpol","prevResult":{"ips":[{"address":"10.0.0.300/24"}]}}`,
			true, []string{`field "prevResult"`, "10.0.0.300/24"}},
		{"prevResult 0.4.0 ips not a list", `{"cniVersion":"0.4.0","type":"netpol","prevResult":{"ips":"10.0.0.3/24"}}`,
			true, []string{`field "prevResult"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.stdin), tt.requirePrev)
			if err == nil {
				t.Fatalf("Parse = %+v, want error", got)
			}
			for _, want := range tt.wantContains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestSupportedVersions(t *testing.T) {
	want := []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	if diff := cmp.Diff(want, SupportedVersions()); diff != "" {
		t.Errorf("SupportedVersions (-want +got):\n%s", diff)
	}
}
