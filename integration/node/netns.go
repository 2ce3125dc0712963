package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const netnsDir = "/run/netns"

func netnsPath(name string) string { return filepath.Join(netnsDir, name) }

// createNetNS makes a named namespace with lo up.
// Equivalent to: ip netns add NAME; ip -n NAME link set lo up
func createNetNS(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if _, err := run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err := ipIn(ctx, name, "link", "set", "lo", "up")
	return err
}

// deleteNetNS removes a named namespace; a namespace that is already gone is
// not an error. Equivalent to: ip netns delete NAME
func deleteNetNS(name string) error {
	if _, err := os.Stat(netnsPath(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	_, err := run(ctx, "ip", "netns", "delete", name)
	return err
}

// ipIn runs `ip -n NS args...`. It refuses an empty namespace so that no
// helper can ever touch the root namespace by mistake.
func ipIn(ctx context.Context, ns string, args ...string) ([]byte, error) {
	if ns == "" {
		return nil, errors.New("ip: refusing to run without a namespace")
	}
	return run(ctx, "ip", append([]string{"-n", ns}, args...)...)
}

// execIn runs `ip netns exec NS name args...` and returns stdout.
func execIn(ctx context.Context, ns, name string, args ...string) ([]byte, error) {
	if ns == "" {
		return nil, errors.New("exec: refusing to run without a namespace")
	}
	return run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// run executes a command and returns stdout; the error carries stderr.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "),
			err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// linkState returns the operstate and admin flags of a link in a namespace.
// Equivalent to: ip -n NS -j link show dev DEV
func linkState(ctx context.Context, ns, dev string) (operstate string, up bool, err error) {
	out, err := ipIn(ctx, ns, "-j", "link", "show", "dev", dev)
	if err != nil {
		return "", false, err
	}
	var links []struct {
		OperState string   `json:"operstate"`
		Flags     []string `json:"flags"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return "", false, fmt.Errorf("ip link show %s in %s: unexpected output %q", dev, ns, out)
	}
	for _, f := range links[0].Flags {
		if f == "UP" {
			up = true
		}
	}
	return links[0].OperState, up, nil
}

// waitLinks polls until every link is administratively up and its
// operstate is UP (or UNKNOWN, as for lo), for at most 5 s.
func waitLinks(ctx context.Context, ns string, devs ...string) error {
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		var pending []string
		for _, d := range devs {
			state, up, err := linkState(ctx, ns, d)
			if err != nil || !up || (state != "UP" && state != "UNKNOWN") {
				pending = append(pending, fmt.Sprintf("%s(%s)", d, state))
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) || i >= 250 {
			return fmt.Errorf("links not up in %s: %s", ns, strings.Join(pending, " "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// firstHost returns the first host address of a CIDR (the bridge gateway
// host-local picks by default).
func firstHost(cidr string) (string, error) {
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return "", err
	}
	ip := append(net.IP(nil), ipnet.IP...)
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	ip[len(ip)-1]++
	return ip.String(), nil
}

// binDir finds the directory holding bin/netpol and bin/netpol-agent:
// the explicit option, $NETPOL_BIN_DIR, or <module root>/bin.
func binDir(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if d := os.Getenv("NETPOL_BIN_DIR"); d != "" {
		return d, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("locating bin dir (set NETPOL_BIN_DIR): %w", err)
	}
	return filepath.Join(root, "bin"), nil
}

// moduleRoot walks up from the working directory to the go.mod of
// github.com/netpol/netpol.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 64; i++ {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/netpol/netpol\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("no go.mod of github.com/netpol/netpol above the working directory")
}

// cniPath is the plugin search path: the netpol bin dir first, then the
// explicit option, $NETPOL_CNI_PATH, $CNI_PATH, or /opt/cni/bin.
func cniPath(explicit []string, bin string) []string {
	path := []string{bin}
	switch {
	case len(explicit) > 0:
		return append(path, explicit...)
	case os.Getenv("NETPOL_CNI_PATH") != "":
		return append(path, filepath.SplitList(os.Getenv("NETPOL_CNI_PATH"))...)
	case os.Getenv("CNI_PATH") != "":
		return append(path, filepath.SplitList(os.Getenv("CNI_PATH"))...)
	}
	return append(path, "/opt/cni/bin")
}
