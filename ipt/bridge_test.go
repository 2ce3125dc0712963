package ipt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSysctlOn(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	name := BridgeNFCallSysctl(IPv6)
	if name != "net.bridge.bridge-nf-call-ip6tables" || BridgeNFCallSysctl(IPv4) != "net.bridge.bridge-nf-call-iptables" {
		t.Fatalf("BridgeNFCallSysctl = %q, %q", BridgeNFCallSysctl(IPv4), name)
	}
	if err := checkSysctlOn(write("on", "1\n"), name, IPv6); err != nil {
		t.Errorf("sysctl at 1: %v", err)
	}
	for _, tc := range []struct{ path, says string }{
		{write("off", "0\n"), "net.bridge.bridge-nf-call-ip6tables is 0 in this network namespace: bridged ipv6 traffic bypasses"},
		{write("two", "2\n"), "set it to 1 (sysctl -w net.bridge.bridge-nf-call-ip6tables=1)"},
		{filepath.Join(dir, "missing"), "does not exist in this network namespace (br_netfilter is not loaded)"},
	} {
		if err := checkSysctlOn(tc.path, name, IPv6); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error saying %q", tc.path, err, tc.says)
		}
	}
}
