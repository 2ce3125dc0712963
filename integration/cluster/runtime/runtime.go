// Package runtime runs a real container runtime, containerd 2.x with its
// CRI plugin and runc, on a test "node": a network namespace the test made
// (integration/node). Pods are created through the CRI (crictl), and
// containerd itself calls the CNI chain in its conf dir (bridge → netpol →
// portmap), exactly as on a real node.
//
// Namespaces. Start launches a holder process, `sleep infinity`, inside the
// node's network namespace and in a private mount namespace of its own (see
// holderScript: /run is a private tmpfs, /etc, /opt and /var/lib are
// copy-on-write overlays whose writes land under Dir). containerd runs in
// both of the holder's namespaces, and so can anything else: Command runs a
// program there (nsenter --target HolderPID --net --mount), which is how a
// kubelet joins the same node. The namespace files are NetNSPath() and
// MntNSPath() (/proc/<holder>/ns/{net,mnt}); files that exist only in the
// private mount namespace (e.g. a pod's /var/run/netns/cni-… file) are
// reachable from outside as HostPath(p) = /proc/<holder>/root/<p>.
//
// Teardown. Close removes every pod through the CRI (so the CNI chain sees
// DEL), stops containerd (SIGTERM, then SIGKILL), SIGKILLs every process
// left in the holder's mount namespace and their descendants (shims,
// containers: ours by construction, found through /proc/*/ns/mnt), kills the
// holder (its namespaces and all their mounts go with it) and removes the
// cgroups runc made under CgroupParent. Nothing is written to the machine's
// /etc/cni, /opt/cni, /var/lib/cni, /var/lib/containerd or /run/containerd.
//
// Binaries: containerd, containerd-shim-runc-v2, ctr and crictl from
// Options.BinDir (default $NETPOL_CLUSTER_BIN, else <repo>/.cache/cluster,
// where hack/cluster-deps.sh puts them), runc from PATH.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/netpol/netpol/integration/cluster/image"
)

// Options configures a Runtime.
type Options struct {
	// Dir holds everything of the runtime: config, root, state, socket,
	// logs, CNI conf dir, shadow overlays (required; e.g. t.TempDir()).
	Dir string
	// NetNS is the path of the node's network namespace (required), e.g.
	// node.Node.NetNSPath.
	NetNS string
	// BinDir holds containerd, containerd-shim-runc-v2, ctr and crictl.
	BinDir string
	// CNIBinDirs are searched for CNI plugins (required).
	CNIBinDirs []string
	// ConfDir is the CRI plugin's CNI conf dir, as seen inside the
	// runtime's mount namespace (default Dir/net.d). It must be under Dir
	// or under a shadowed dir (e.g. /etc/cni/net.d); Start creates it
	// there. From outside, read it through HostPath(ConfDir).
	ConfDir string
	// Conflist, when set, is written to ConfDir/10-policy.conflist.
	Conflist []byte
	// SandboxImage is the CRI sandbox (pause) image; it must be imported
	// before the first pod (default PauseRef).
	SandboxImage string
	// Snapshotter is the CRI snapshotter (default "overlayfs").
	Snapshotter string
	// Shadow are the directories made copy-on-write inside the mount
	// namespace (default /etc, /opt, /var/lib).
	Shadow []string
	// CgroupParent is the cgroup (v1, cgroupfs) that pods of this runtime
	// should use as linux.cgroup_parent; Close removes what is left under
	// it. Default "/netpol-rt-<holder pid>".
	CgroupParent string
	// Env is added to containerd's environment (and so to the CNI plugins').
	Env []string
	// LogLevel of containerd (default "info").
	LogLevel string
}

// Runtime is a running containerd on a node.
type Runtime struct {
	Dir          string
	Socket       string // containerd's gRPC socket (Dir/containerd.sock)
	Endpoint     string // "unix://" + Socket, for crictl and the kubelet
	ConfDir      string // CNI conf dir
	BinDir       string // containerd, shim, ctr, crictl
	CgroupParent string
	HolderPID    int // the process whose namespaces containerd runs in

	opts       Options
	runc       string
	holder     *exec.Cmd
	holderDone chan error
	daemon     *exec.Cmd
	daemonDone chan error
	logFile    *os.File
}

// Start prepares the namespaces and starts containerd; the caller must
// Close the runtime, also when Start fails after returning a non-nil
// runtime (Start closes it itself on error).
func Start(ctx context.Context, opts Options) (_ *Runtime, err error) {
	r, err := newRuntime(opts)
	if err != nil {
		return nil, err
	}
	if _, err := Sweep(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	if err := r.startHolder(); err != nil {
		return nil, err
	}
	if err := r.writeConfDir(); err != nil {
		return nil, err
	}
	if r.CgroupParent == "" {
		r.CgroupParent = fmt.Sprintf("/netpol-rt-%d", r.HolderPID)
	}
	if err := r.startDaemon(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func newRuntime(opts Options) (*Runtime, error) {
	if opts.Dir == "" || opts.NetNS == "" || len(opts.CNIBinDirs) == 0 {
		return nil, fmt.Errorf("runtime: Dir (%q), NetNS (%q) and CNIBinDirs (%v) are required", opts.Dir, opts.NetNS, opts.CNIBinDirs)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if opts.BinDir == "" {
		if opts.BinDir, err = DefaultBinDir(); err != nil {
			return nil, err
		}
	}
	if err := CheckBinaries(opts.BinDir); err != nil {
		return nil, err
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, fmt.Errorf("runc: %w (hack/cluster-deps.sh installs it)", err)
	}
	setDefaults(&opts, dir)
	if !filepath.IsAbs(opts.ConfDir) {
		return nil, fmt.Errorf("runtime: ConfDir %q is not absolute", opts.ConfDir)
	}
	r := &Runtime{
		Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), ConfDir: opts.ConfDir,
		BinDir: opts.BinDir, CgroupParent: opts.CgroupParent, opts: opts, runc: runc,
	}
	r.Endpoint = "unix://" + r.Socket
	if len(r.Socket) > 100 {
		return nil, fmt.Errorf("runtime dir %q: socket path %q is too long for a unix socket", dir, r.Socket)
	}
	if !r.private(r.ConfDir) {
		return nil, fmt.Errorf("runtime: ConfDir %q is neither under Dir nor under a shadowed dir %v: it would be the machine's", r.ConfDir, opts.Shadow)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	crictl := fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 60\n", r.Endpoint, r.Endpoint)
	if err := os.WriteFile(r.CrictlConfig(), []byte(crictl), 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

// private reports whether path p, as seen inside the runtime's mount
// namespace, is the runtime's own: under Dir, or under a shadowed dir.
func (r *Runtime) private(p string) bool {
	for _, d := range append([]string{r.Dir}, r.opts.Shadow...) {
		if p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// writeConfDir creates ConfDir and writes Options.Conflist into it, as
// seen inside the runtime's mount namespace (through HostPath): a ConfDir
// such as /etc/cni/net.d lands in the /etc overlay, never in the machine's
// /etc.
func (r *Runtime) writeConfDir() error {
	dir := r.HostPath(r.ConfDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if r.opts.Conflist == nil {
		return nil
	}
	return os.WriteFile(filepath.Join(dir, "10-policy.conflist"), r.opts.Conflist, 0o644)
}

func setDefaults(o *Options, dir string) {
	o.Dir = dir
	if o.ConfDir == "" {
		o.ConfDir = filepath.Join(dir, "net.d")
	}
	if o.SandboxImage == "" {
		o.SandboxImage = PauseRef
	}
	if o.Snapshotter == "" {
		o.Snapshotter = "overlayfs"
	}
	if o.Shadow == nil {
		o.Shadow = []string{"/etc", "/opt", "/var/lib"}
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
}

// PauseRef is the sandbox image the runtime uses by default
// (image.Builder.Pause builds it).
const PauseRef = image.PauseRef

// Binaries are the programs the runtime needs in its BinDir.
var Binaries = []string{"containerd", "containerd-shim-runc-v2", "ctr", "crictl"}

// DefaultBinDir is $NETPOL_CLUSTER_BIN, else <repo>/.cache/cluster.
func DefaultBinDir() (string, error) {
	if d := os.Getenv("NETPOL_CLUSTER_BIN"); d != "" {
		return d, nil
	}
	root, err := image.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("locating the cluster bin dir (set NETPOL_CLUSTER_BIN): %w", err)
	}
	return filepath.Join(root, ".cache", "cluster"), nil
}

// CheckBinaries reports which of Binaries are missing in dir, and runc.
func CheckBinaries(dir string) error {
	var missing []string
	for _, b := range Binaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, filepath.Join(dir, b))
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		missing = append(missing, "runc")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s (run hack/cluster-deps.sh %s)", strings.Join(missing, ", "), dir)
	}
	return nil
}

func (r *Runtime) path(elem ...string) string {
	return filepath.Join(append([]string{r.Dir}, elem...)...)
}

// CrictlConfig is a crictl config file for this runtime
// (crictl --config FILE ...).
func (r *Runtime) CrictlConfig() string { return r.path("crictl.yaml") }

// NetNSPath is the node's network namespace as the holder holds it.
func (r *Runtime) NetNSPath() string { return fmt.Sprintf("/proc/%d/ns/net", r.HolderPID) }

// MntNSPath is the runtime's private mount namespace.
func (r *Runtime) MntNSPath() string { return fmt.Sprintf("/proc/%d/ns/mnt", r.HolderPID) }

// HostPath returns a path through which the test process (in the
// machine's mount namespace) reaches path p as seen inside the runtime's
// mount namespace: /proc/<holder>/root/<p>.
func (r *Runtime) HostPath(p string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", r.HolderPID), p)
}

// Command returns a command that runs inside the runtime's network and
// mount namespaces. Equivalent to:
// nsenter --target HOLDER --net --mount -- name args...
// It is killed with SIGKILL if the test process dies.
func (r *Runtime) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	a := append([]string{"--target", fmt.Sprint(r.HolderPID), "--net", "--mount", "--", name}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", a...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	return cmd
}

// Close tears the runtime down (see the package doc); it is safe to call
// twice, after a failed Start, and after containerd died (then no DEL
// reaches the chain: the pods' processes are killed and their namespaces
// vanish with them).
func (r *Runtime) Close() error {
	var errs []error
	if r.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		// A containerd that died meanwhile leaves its pods to killNamespace.
		// It may still be exiting when crictl finds its socket closed: its
		// main thread is a zombie while another thread finishes, and Wait
		// returns only after that, so give it a moment before judging.
		if _, err := r.Crictl(ctx, "rmp", "--all", "--force"); err != nil && !r.exitedWithin(10*time.Second) {
			errs = append(errs, fmt.Errorf("removing pods: %w", err))
		}
		cancel()
	}
	errs = append(errs, r.Stop())
	if r.HolderPID != 0 && r.holder != nil {
		errs = append(errs, r.killNamespace())
	}
	errs = append(errs, r.stopHolder())
	errs = append(errs, r.removeCgroups())
	return errors.Join(errs...)
}
