package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/cluster/runtime"
	"github.com/netpol/netpol/integration/node"
)

// sweepChildEnv makes the test binary act as a test process that starts a
// runtime with a pod and is then killed (TestRuntimeSweep).
const sweepChildEnv = "NETPOL_RUNTIME_SWEEP_CHILD"

// TestRuntimeSweep: a test process killed outright (as by go test's
// -timeout) runs no cleanup; its holder and containerd die with it, but
// the pod's shim and pause process live on. The next runtime's Sweep
// kills them and removes their cgroups.
func TestRuntimeSweep(t *testing.T) {
	if os.Getenv(sweepChildEnv) == "1" {
		sweepChild()
		return
	}
	requireRuntimeDeps(t)
	imageArchive(t, "pause") // built here, not in the child
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRuntimeSweep$", "-test.v")
	child.Env = append(os.Environ(), sweepChildEnv+"=1", "NETPOL_IMAGE_DIR="+filepath.Dir(imageArchive(t, "pause")))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var holder, pause, shim int
	var cgroup string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "sweep-child-ready %d %d %d %s", &holder, &pause, &shim, &cgroup); err == nil {
			break
		}
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	if pause == 0 {
		t.Fatal("the child never reported a running pod")
	}
	for i := 0; i < 100 && alive(holder); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if !alive(pause) || !alive(shim) || alive(holder) {
		t.Fatalf("after the kill: holder alive %v, shim alive %v, pause alive %v; want only shim and pause left",
			alive(holder), alive(shim), alive(pause))
	}
	removed, err := runtime.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(removed, " "), cgroup) {
		t.Errorf("Sweep removed %v; want the child's %s", removed, cgroup)
	}
	for i := 0; i < 100 && (alive(pause) || alive(shim)); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(pause) || alive(shim) {
		t.Errorf("after Sweep: shim alive %v, pause alive %v", alive(shim), alive(pause))
	}
	if _, err := node.Sweep(); err != nil {
		t.Errorf("node.Sweep: %v", err)
	}
	sweepRuntimeDirs(t)
}

// sweepChild starts a node, a runtime and a pod without any cleanup,
// reports them and waits to be killed.
func sweepChild() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "sweep child:", err)
		os.Exit(1)
	}
	shipped, err := node.RepoFile("10-policy.conflist")
	if err != nil {
		fail(err)
	}
	n, err := node.Create(node.Options{Conflist: shipped})
	if err != nil {
		fail(err)
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("np-rt-%d-", os.Getpid()))
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	rt, err := runtime.Start(ctx, runtime.Options{Dir: filepath.Join(dir, "rt"), NetNS: n.NetNSPath,
		Conflist: n.Conflist(), CNIBinDirs: n.CNIPath})
	if err != nil {
		fail(err)
	}
	if err := rt.Import(ctx, filepath.Join(os.Getenv("NETPOL_IMAGE_DIR"), "netpol-pause.tar")); err != nil {
		fail(err)
	}
	p, err := rt.RunPod(ctx, runtime.PodSpec{Namespace: "default", Name: "orphan"})
	if err != nil {
		fail(err)
	}
	shim, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	f := strings.Fields(string(shim[strings.LastIndexByte(string(shim), ')')+1:]))
	fmt.Printf("sweep-child-ready %d %d %s %s\n", rt.HolderPID, p.PID, f[1], "netpol-rt-"+fmt.Sprint(rt.HolderPID))
	time.Sleep(time.Hour)
}
