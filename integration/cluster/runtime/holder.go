package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// holderScript runs inside the new mount namespace (already inside the
// node's network namespace) and prepares it before it becomes the holder:
//
//   - every mount is made private (unshare --propagation private), so
//     nothing below propagates back to the machine;
//   - /run becomes a tmpfs: containerd's shim sockets (/run/containerd/s),
//     runc state and the pods' netns files (/var/run/netns) live there and
//     vanish with the namespace. The machine's /run/xtables.lock (the lock
//     every iptables user shares) is bound back into it first;
//   - each shadowed directory (default /etc, /opt, /var/lib) becomes an
//     overlay whose upper layer is under the runtime's dir: reads see the
//     machine's files, writes (libcni's cache in /var/lib/cni, a
//     DaemonSet's /etc/cni/net.d, /opt/cni/bin, /var/lib/netpol) land in
//     Dir/shadow/<dir>/upper and never reach the machine;
//   - finally every mount of the namespace is made shared again, within the
//     namespace only (new peer groups, none shared with the machine), as on
//     a systemd host: a pod's mountPropagation: HostToContainer volume
//     (e.g. the DaemonSet's /var/run/netns) then sees the netns files the
//     runtime mounts after the pod started.
//
// Then it execs `sleep infinity`: the holder keeps both namespaces alive
// until Close kills it. Arguments: $1 = Dir, then the shadowed dirs.
const holderScript = `set -eu
dir=$1; shift
mkdir -p "$dir/stage"
: > "$dir/stage/xtables.lock"
mount --bind /run/xtables.lock "$dir/stage/xtables.lock"
mount -t tmpfs -o mode=0755 netpol-run /run
: > /run/xtables.lock
mount --bind "$dir/stage/xtables.lock" /run/xtables.lock
umount "$dir/stage/xtables.lock"
for d in "$@"; do
  s="$dir/shadow/$(echo "$d" | tr / _)"
  mkdir -p "$s/upper" "$s/work"
  mount -t overlay netpol-shadow -o "lowerdir=$d,upperdir=$s/upper,workdir=$s/work" "$d"
done
mount --make-rshared /
exec sleep infinity
`

// startHolder starts the holder process: nsenter into the node's network
// namespace, unshare a private mount namespace, run holderScript. It
// returns once the holder sleeps in its prepared namespaces.
func (r *Runtime) startHolder() error {
	if err := ensureLockFile(); err != nil {
		return err
	}
	for _, d := range append([]string{r.Dir}, r.opts.Shadow...) {
		if strings.ContainsAny(d, ",:\n") {
			return fmt.Errorf("runtime dir or shadowed dir %q: overlay options cannot hold ',' or ':'", d)
		}
	}
	args := append([]string{"--net=" + r.opts.NetNS, "--", "unshare", "--mount", "--propagation", "private",
		"--", "sh", "-c", holderScript, "holder", r.Dir}, r.opts.Shadow...)
	cmd := exec.Command("nsenter", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting namespace holder: %w", err)
	}
	r.holder = cmd
	r.holderDone = make(chan error, 1)
	go func() { r.holderDone <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < 1500; i++ {
		select {
		case err := <-r.holderDone:
			r.holderDone <- err
			return fmt.Errorf("namespace holder exited (%v): %s", err, out.String())
		default:
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid)); string(comm) == "sleep\n" {
			r.HolderPID = cmd.Process.Pid
			return nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("namespace holder (pid %d) not ready after 15 s: %s", cmd.Process.Pid, out.String())
}

// ensureLockFile creates /run/xtables.lock when missing, as the first
// iptables run on the machine would: the holder binds it into its /run.
func ensureLockFile() error {
	f, err := os.OpenFile("/run/xtables.lock", os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return fmt.Errorf("xtables lock: %w", err)
	}
	return f.Close()
}

// nsID returns the namespace link of a process, e.g. "mnt:[4026532712]".
func nsID(pid int, kind string) (string, error) {
	return os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
}

// killNamespace SIGKILLs every process that lives in the holder's mount
// namespace (containerd, its shims, a kubelet, anything run through
// Command) and all their descendants (containers, which have mount
// namespaces of their own), except the holder itself. It repeats until
// none is left, for at most 10 s. These processes are ours by
// construction: nothing else can enter that namespace.
func (r *Runtime) killNamespace() error {
	mnt, err := nsID(r.HolderPID, "mnt")
	if err != nil {
		return fmt.Errorf("holder pid %d: %w", r.HolderPID, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 200; i++ {
		pids := r.namespacePIDs(mnt)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of the runtime's namespace still alive after SIGKILL: %v", pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("processes of the runtime's namespace still alive")
}

// namespacePIDs lists the processes in mount namespace mnt (but not the
// holder) and their descendants.
func (r *Runtime) namespacePIDs(mnt string) []int {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	ours := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == r.HolderPID {
			continue
		}
		if id, err := nsID(pid, "mnt"); err == nil && id == mnt {
			ours[pid] = true
		}
		if pp, ok := ppid(pid); ok {
			parent[pid] = pp
		}
	}
	var out []int
	for pid := range parent {
		for p, hops := pid, 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if ours[p] {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// ppid reads a process's parent from /proc/PID/stat.
func ppid(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// stopHolder kills the holder and waits for it; its namespaces, and every
// mount made in them, go away with it.
func (r *Runtime) stopHolder() error {
	if r.holder == nil {
		return nil
	}
	_ = r.holder.Process.Kill()
	select {
	case <-r.holderDone:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("namespace holder pid %d did not exit", r.HolderPID)
	}
	r.holder = nil
	return nil
}

// removeCgroups removes the cgroup directories runc left under the
// runtime's cgroup parent in every v1 hierarchy (deepest first); a
// directory that still has processes stays and is reported.
func (r *Runtime) removeCgroups() error {
	if r.CgroupParent == "" {
		return nil
	}
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	var errs []error
	for _, root := range roots {
		top := filepath.Join(root, r.CgroupParent)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
