package cluster_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// e2eSkip skips the only upstream Netpol specs this kernel cannot run:
// those that send real SCTP traffic (the kernel has no SCTP). The two
// specs whose policies name SCTP but whose probes are TCP still run.
const e2eSkip = `\[Feature:SCTPConnectivity\]`

// TestUpstreamNetpolE2E runs the unmodified upstream e2e suite (e2e.test,
// built from k8s.io/kubernetes/test/e2e at the module's version) against a
// real one-node cluster with netpol installed by its DaemonSet, focused on
// $NETPOL_E2E_FOCUS (default "Netpol": every NetworkPolicy spec), and
// streams its output; the test passes when the suite does. It runs only
// when NETPOL_E2E=1 (make e2e): the whole suite takes long.
func TestUpstreamNetpolE2E(t *testing.T) {
	if os.Getenv("NETPOL_E2E") != "1" {
		t.Skip("set NETPOL_E2E=1 (make e2e) to run the upstream suite")
	}
	bin := k8sBin(t, "e2e.test")
	env := bringUp(t)
	installNetpol(t, env)

	focus := os.Getenv("NETPOL_E2E_FOCUS")
	if focus == "" {
		focus = "Netpol"
	}
	if err := runE2E(t, bin, env, focus); err != nil {
		t.Fatalf("upstream e2e suite (focus %q, skip %q): %v", focus, e2eSkip, err)
	}
}

// runE2E runs e2e.test in the node's network namespace (where the API
// server is), output streamed to the test's stdout.
func runE2E(t *testing.T, bin string, env *nodeEnv, focus string) error {
	t.Helper()
	out := t.TempDir()
	args := []string{
		"--net=" + env.Node.NS, "--",
		filepath.Join(bin, "e2e.test"),
		"--kubeconfig=" + env.Cluster.Kubeconfig,
		"--provider=skeleton",
		"--ginkgo.focus=" + focus,
		"--ginkgo.skip=" + e2eSkip,
		"--ginkgo.no-color",
		"--ginkgo.v",
		"--ginkgo.timeout=6h",
		"--e2e-output-dir=" + out,
		"--report-dir=" + out,
		"--kubelet-root-dir=" + env.KubeletRoot,
		"--container-runtime-endpoint=" + env.RuntimeEndpoint,
		"--disable-log-dump",
	}
	if extra := os.Getenv("NETPOL_E2E_ARGS"); extra != "" {
		args = append(args, strings.Fields(extra)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Hour)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	var w io.Writer = os.Stdout
	if path := os.Getenv("NETPOL_E2E_LOG"); path != "" { // make e2e repeats the summary from it
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Dir = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	t.Logf("running %s", strings.Join(cmd.Args, " "))
	return cmd.Run()
}
