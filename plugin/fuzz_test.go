package plugin

import (
	"net/netip"
	"testing"

	"github.com/netpol/netpol/conf"
)

// FuzzResultIPs extracts the pod's addresses from arbitrary prevResults that
// conf.Parse accepts. resultIPs has no renderer, so the property checked is
// that its output is already normal: every address parses, prints the same
// again (no ::ffff: form for IPv4, no prefix length), is never the
// unspecified address, and there are no more addresses than prevResult
// listed.
func FuzzResultIPs(f *testing.F) {
	f.Add("1.0.0", `{"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/var/run/netns/p1"}],`+
		`"ips":[{"interface":1,"address":"10.244.0.5/24"},{"interface":1,"address":"fd00:10:244::5/64"}]}`, "eth0")
	f.Add("0.4.0", `{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/x"}],`+
		`"ips":[{"version":"4","interface":0,"address":"10.244.0.6/24"}]}`, "eth0")
	f.Add("1.0.0", `{"cniVersion":"1.0.0","ips":[{"address":"::ffff:10.0.0.1/96"},{"address":"0.0.0.0/0"}]}`, "eth0")
	f.Add("1.0.0", `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"interface":-1,"address":"10.0.0.1/8"},{"interface":7,"address":"10.0.0.2/8"}]}`, "eth0")
	f.Fuzz(func(t *testing.T, ver, prev, ifName string) {
		stdin := `{"cniVersion":"` + ver + `","name":"n","type":"netpol","prevResult":` + prev + `}`
		c, err := conf.Parse([]byte(stdin), true)
		if err != nil {
			return
		}
		ips, err := resultIPs(c.PrevResult, ifName)
		if (err == nil) != (len(ips) > 0) {
			t.Fatalf("resultIPs = %v, %v: an error exactly when no address is usable", ips, err)
		}
		if len(ips) > len(c.PrevResult.IPs) {
			t.Fatalf("%d addresses from %d ips entries", len(ips), len(c.PrevResult.IPs))
		}
		for _, s := range ips {
			a, err := netip.ParseAddr(s)
			if err != nil {
				t.Fatalf("address %q does not parse: %v", s, err)
			}
			if a.String() != s || a.Is4In6() || a.IsUnspecified() {
				t.Errorf("address %q is not normal (parses as %s)", s, a)
			}
		}
	})
}
