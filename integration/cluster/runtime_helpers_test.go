package cluster_test

// Helpers of the runtime tests: a node namespace (integration/node) with
// containerd 2.x on it (package runtime), the pause image imported, the
// shipped conflist (bridge → netpol → portmap) in the runtime's CNI conf
// dir, and a recorder of every CNI call containerd makes.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/cluster/image"
	"github.com/netpol/netpol/integration/cluster/runtime"
	"github.com/netpol/netpol/integration/node"
)

// requireRuntimeDeps skips the test when the runtime's programs are not
// installed, or fails it when NETPOL_REQUIRE_CLUSTER=1 (CI), so that a
// missing dependency can never pass as a skip there.
func requireRuntimeDeps(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	bin, err := runtime.DefaultBinDir()
	if err == nil {
		err = runtime.CheckBinaries(bin)
	}
	if err != nil {
		missing = append(missing, err.Error())
	}
	for _, p := range []string{"ip", "nsenter", "unshare", "iptables-save", "ipset"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "runtime tests need: " + strings.Join(missing, "; ") + " (make build deps; hack/cluster-deps.sh .cache/cluster)"
	if os.Getenv("NETPOL_REQUIRE_CLUSTER") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

var (
	imagesMu sync.Mutex
	archives = map[string]string{}
)

// imageFiles are the archives make image writes, by image.
var imageFiles = map[string]string{"pause": "netpol-pause.tar", "netpol": "netpol.tar", "agnhost": "agnhost.tar"}

// imageArchive returns the archive of an image ("pause", "netpol" or
// "agnhost"): from $NETPOL_IMAGE_DIR when set (make image's output, built
// once for all tests), else built once per test binary into
// <repo>/.cache/images (agnhost from $NETPOL_AGNHOST when set).
func imageArchive(t *testing.T, which string) string {
	t.Helper()
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if a, ok := archives[which]; ok {
		return a
	}
	if dir := os.Getenv("NETPOL_IMAGE_DIR"); dir != "" {
		a := filepath.Join(dir, imageFiles[which])
		if _, err := os.Stat(a); err != nil {
			t.Fatalf("NETPOL_IMAGE_DIR: %v (make image)", err)
		}
		archives[which] = a
		return a
	}
	root, err := image.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b := &image.Builder{Cache: filepath.Join(root, ".cache", "images"), Log: t.Logf}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var a string
	switch which {
	case "pause":
		a, err = b.Pause(ctx)
	case "netpol":
		a, err = b.Netpol(ctx)
	case "agnhost":
		a, err = b.Agnhost(ctx, os.Getenv("NETPOL_AGNHOST"))
	default:
		err = fmt.Errorf("unknown image %q", which)
	}
	if err != nil {
		t.Fatalf("building the %s image: %v", which, err)
	}
	archives[which] = a
	return a
}

// runtimeEnv is a node with containerd on it.
type runtimeEnv struct {
	node *node.Node
	rt   *runtime.Runtime
	// calls records every CNI plugin call containerd made (see recorder).
	calls *recorder
}

// runtimeOptions tune newRuntimeEnv.
type runtimeOptions struct {
	// cniVersion, when set, replaces the shipped conflist's cniVersion.
	cniVersion string
	// confDir, when set, is the runtime's CNI conf dir.
	confDir string
}

// newRuntimeEnv makes a node from the shipped 10-policy.conflist
// (localized: netpol's dataDir and host-local's dataDir in the node's temp
// dir), starts containerd on it with a recorder in front of the chain's
// plugins, and imports the pause image. Everything is torn down in
// t.Cleanup, also on failure.
func newRuntimeEnv(t *testing.T, o runtimeOptions) *runtimeEnv {
	t.Helper()
	requireRuntimeDeps(t)
	archive := imageArchive(t, "pause")
	shipped, err := node.RepoFile("10-policy.conflist")
	if err != nil {
		t.Fatal(err)
	}
	n := node.New(t, node.Options{Conflist: shipped})
	conflist := n.Conflist()
	if o.cniVersion != "" {
		conflist = setCNIVersion(t, conflist, o.cniVersion)
	}
	dir := shortTempDir(t)
	calls := newRecorder(t, filepath.Join(dir, "cni-calls"), n.CNIPath, "bridge", "netpol", "portmap")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rt, err := runtime.Start(ctx, runtime.Options{
		Dir: filepath.Join(dir, "rt"), NetNS: n.NetNSPath, Conflist: conflist, ConfDir: o.confDir,
		CNIBinDirs: append([]string{calls.dir}, n.CNIPath...),
	})
	if err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log (tail):\n%s", rt.LogTail(60))
		}
		if err := rt.Close(); err != nil {
			t.Errorf("closing the runtime: %v", err)
		}
	})
	if err := rt.Import(ctx, archive); err != nil {
		t.Fatalf("importing the pause image: %v", err)
	}
	return &runtimeEnv{node: n, rt: rt, calls: calls}
}

// importImage imports one of the images (imageArchive) into the runtime.
func (e *runtimeEnv) importImage(t *testing.T, which string) {
	t.Helper()
	archive := imageArchive(t, which)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.rt.Import(ctx, archive); err != nil {
		t.Fatalf("importing %s: %v", archive, err)
	}
}

// shortTempDir is a temp dir with a short path: containerd's socket path
// must fit a unix socket address (108 bytes). Its name carries the test
// process's pid so that sweepRuntimeDirs can remove it if the process is
// killed before its cleanup runs.
func shortTempDir(t *testing.T) string {
	t.Helper()
	sweepRuntimeDirs(t)
	dir, err := os.MkdirTemp("", fmt.Sprintf("np-rt-%d-", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}

func setCNIVersion(t *testing.T, conflist []byte, v string) []byte {
	t.Helper()
	s := string(conflist)
	i := strings.Index(s, `"cniVersion": "`)
	if i < 0 {
		t.Fatalf("conflist has no cniVersion:\n%s", s)
	}
	j := strings.Index(s[i+15:], `"`)
	return []byte(s[:i+15] + v + s[i+15+j:])
}

// runPod runs a pod sandbox and fails the test unless it is ready with an
// IP in the node's subnet.
func (e *runtimeEnv) runPod(t *testing.T, namespace, name string, labels map[string]string) *runtime.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := e.rt.RunPod(ctx, runtime.PodSpec{Namespace: namespace, Name: name, Labels: labels})
	if err != nil {
		t.Fatalf("crictl runp %s/%s: %v", namespace, name, err)
	}
	if p.State != "SANDBOX_READY" || p.IP == "" || p.NetNS == "" {
		t.Fatalf("pod %s/%s: state %s, IP %q, netns %q; want a ready sandbox with an IP", namespace, name, p.State, p.IP, p.NetNS)
	}
	return p
}

// source is a pod as a probe source/target of integration/node.
func source(p *runtime.Pod) node.Source {
	return node.Source{Name: p.Namespace + "/" + p.Name, NetNSPath: p.NetNS, IP: p.IP}
}

// call is one CNI plugin invocation seen by the recorder.
type call struct {
	Plugin  string
	Command string // CNI_COMMAND
	Args    string // CNI_ARGS
	NetNS   string // CNI_NETNS
	Version string // cniVersion of the config on stdin
	Stdin   string
}

// recorder is a directory of wrapper scripts, one per chain plugin, placed
// first in containerd's CNI bin_dirs: each logs its CNI_* environment and
// stdin and then execs the real plugin with the same stdin.
type recorder struct {
	dir, logDir string
}

func newRecorder(t *testing.T, dir string, path []string, plugins ...string) *recorder {
	t.Helper()
	r := &recorder{dir: filepath.Join(dir, "bin"), logDir: filepath.Join(dir, "log")}
	for _, d := range []string{r.dir, r.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range plugins {
		real := ""
		for _, d := range path {
			if fi, err := os.Stat(filepath.Join(d, p)); err == nil && fi.Mode().IsRegular() {
				real = filepath.Join(d, p)
				break
			}
		}
		if real == "" {
			t.Fatalf("CNI plugin %s not found in %v", p, path)
		}
		script := fmt.Sprintf(`#!/bin/sh
f=%q/$(date +%%s%%N)-$$-%s
env | grep '^CNI_' > "$f.env"
cat > "$f.stdin"
exec %q < "$f.stdin"
`, r.logDir, p, real)
		if err := os.WriteFile(filepath.Join(r.dir, p), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// Calls returns the recorded calls in the order they were made.
func (r *recorder) Calls(t *testing.T) []call {
	t.Helper()
	envs, err := filepath.Glob(filepath.Join(r.logDir, "*.env"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(envs)
	var out []call
	for _, e := range envs {
		base := strings.TrimSuffix(e, ".env")
		c := call{Plugin: base[strings.LastIndexByte(base, '-')+1:]}
		f, err := os.Open(e)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), "=")
			switch k {
			case "CNI_COMMAND":
				c.Command = v
			case "CNI_ARGS":
				c.Args = v
			case "CNI_NETNS":
				c.NetNS = v
			}
		}
		f.Close()
		stdin, _ := os.ReadFile(base + ".stdin")
		c.Stdin = string(stdin)
		c.Version = jsonString(c.Stdin, "cniVersion")
		out = append(out, c)
	}
	return out
}

// jsonString extracts the first "key": "value" of a JSON text.
func jsonString(s, key string) string {
	i := strings.Index(s, `"`+key+`":`)
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(s[i+len(key)+3:], " ")
	if !strings.HasPrefix(rest, `"`) {
		return ""
	}
	j := strings.IndexByte(rest[1:], '"')
	if j < 0 {
		return ""
	}
	return rest[1 : 1+j]
}

// reset forgets the calls recorded so far.
func (r *recorder) reset(t *testing.T) {
	t.Helper()
	if err := os.RemoveAll(r.logDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// sweepRuntimeDirs removes the runtime dirs (shortTempDir) of test
// processes that are gone, after runtime.Sweep has killed what ran in them.
func sweepRuntimeDirs(t *testing.T) {
	t.Helper()
	if removed, err := runtime.Sweep(); err != nil || len(removed) > 0 {
		t.Logf("swept runtimes of dead test processes: %v (errors: %v)", removed, err)
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "np-rt-*-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.Split(filepath.Base(d), "-")[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			t.Logf("removing %s of dead test process %d", d, pid)
			_ = os.RemoveAll(d)
		}
	}
}
