package ipt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// BridgeNFCallSysctl is the br_netfilter switch that sends bridged traffic
// of family f through iptables (ip6tables for IPv6): without it, traffic
// between pods of one bridge never reaches a rule of ours.
func BridgeNFCallSysctl(f Family) string {
	if f == IPv6 {
		return "net.bridge.bridge-nf-call-ip6tables"
	}
	return "net.bridge.bridge-nf-call-iptables"
}

// CheckBridgeNFCall returns nil when bridged traffic of family f passes
// through iptables in this network namespace (the switch is per namespace),
// and otherwise an error saying what to set. It reads one file.
// Equivalent to: sysctl net.bridge.bridge-nf-call-iptables
func CheckBridgeNFCall(f Family) error {
	name := BridgeNFCallSysctl(f)
	return checkSysctlOn("/proc/sys/"+strings.ReplaceAll(name, ".", "/"), name, f)
}

// checkSysctlOn checks that the sysctl name, read from path, is 1.
func checkSysctlOn(path, name string, f Family) error {
	v, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist in this network namespace (br_netfilter is not loaded): "+
			"bridged %s traffic bypasses iptables and every policy; load it (modprobe br_netfilter) and set %s=1",
			name, f, name)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if s := strings.TrimSpace(string(v)); s != "1" {
		return fmt.Errorf("%s is %s in this network namespace: bridged %s traffic bypasses iptables and every policy; "+
			"set it to 1 (sysctl -w %s=1)", name, s, f, name)
	}
	return nil
}
