package kube

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// kubeletSysctls are the machine-wide sysctls the kubelet sets at start
// (pkg/kubelet/cm: setupKernelTunables). They are not per network
// namespace, so the kubelet must never reach the real ones.
var kubeletSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

// shadowSysctls bind-mounts, inside the mount namespace mnt, a file of
// dir (holding the machine's current value) over each of kubeletSysctls:
// the kubelet reads and writes those files, and the machine's values stay
// as they are. The mount namespace must be private (no propagation back).
// Equivalent to: nsenter --mount=MNT -- mount --bind DIR/F /proc/sys/F
func shadowSysctls(mnt, dir string) error {
	if mnt == "" {
		return fmt.Errorf("kubelet: refusing to start without a private mount namespace (it would set the machine's %s)",
			strings.Join(kubeletSysctls, ", "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var script strings.Builder
	script.WriteString("set -eu\n")
	for _, s := range kubeletSysctls {
		cur, err := os.ReadFile(filepath.Join("/proc/sys", s))
		if err != nil {
			return err
		}
		f := filepath.Join(dir, strings.ReplaceAll(s, "/", "."))
		if err := os.WriteFile(f, cur, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&script, "mount --bind %q %q\n", f, filepath.Join("/proc/sys", s))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--mount="+mnt, "--", "sh", "-c", script.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("shadowing sysctls in %s: %v: %s", mnt, err, out)
	}
	return nil
}
