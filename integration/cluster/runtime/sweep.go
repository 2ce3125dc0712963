package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sweep removes what runtimes of dead test processes left behind: when a
// test binary is killed (go test -timeout) its holder and containerd die
// with it (parent-death signal), but shims and pod processes live on, in
// their cgroups /netpol-rt-<holder pid>. A cgroup tree is stale when its
// holder is gone, or is no longer the holder of those shims' mount
// namespace (the pid was reused); then every process in it and each
// parent that is a containerd shim is SIGKILLed, and the tree removed.
// Sweep also kills orphaned shims wherever their pods' cgroups are (a
// kubelet puts pods under its own cgroup root): a private mount namespace
// (not PID 1's) in which only containerd shims are left has lost its
// holder and containerd, so its shims and all their descendants are
// killed. A machine's own containerd runs its shims in PID 1's mount
// namespace and is never touched. Start calls Sweep. It returns the cgroup
// trees it removed and the shims it killed.
func Sweep() ([]string, error) {
	removed := killOrphanShims()
	tops, _ := filepath.Glob("/sys/fs/cgroup/pids/netpol-rt-*")
	var errs []error
	for _, top := range tops {
		holder, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(top), "netpol-rt-"))
		if err != nil {
			continue
		}
		procs := cgroupProcs(top)
		if !stale(holder, procs) {
			continue
		}
		for _, pid := range procs {
			if pp, ok := ppid(pid); ok && pp > 1 && readComm(pp) == "containerd-shim" {
				_ = syscall.Kill(pp, syscall.SIGKILL)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		r := &Runtime{CgroupParent: "/" + filepath.Base(top)}
		var err2 error
		for i := 0; i < 50; i++ { // the kernel empties a cgroup shortly after its processes die
			if err2 = r.removeCgroups(); err2 == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err2 != nil {
			errs = append(errs, fmt.Errorf("sweeping %s: %w", top, err2))
			continue
		}
		removed = append(removed, top)
	}
	return removed, errors.Join(errs...)
}

// stale reports whether the runtime of holder is gone: the holder process
// is not a live `sleep`, or the shims of procs are in another mount
// namespace than its.
func stale(holder int, procs []int) bool {
	if readComm(holder) != "sleep" {
		return true
	}
	mnt, err := nsID(holder, "mnt")
	if err != nil {
		return true
	}
	for _, pid := range procs {
		if pp, ok := ppid(pid); ok && readComm(pp) == "containerd-shim" {
			if id, err := nsID(pp, "mnt"); err == nil && id != mnt {
				return true
			}
		}
	}
	return false
}

// cgroupProcs lists every process in a cgroup tree.
func cgroupProcs(top string) []int {
	var out []int
	_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		return nil
	})
	return out
}

func readComm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// killOrphanShims SIGKILLs the shims of mount namespaces that hold nothing
// but shims (see Sweep), and their descendants, and names them.
func killOrphanShims() []string {
	initMnt, err := nsID(1, "mnt")
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	members := map[string][]int{} // mount namespace -> processes
	onlyShims := map[string]bool{}
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := ppid(pid); ok {
			parent[pid] = pp
		}
		mnt, err := nsID(pid, "mnt")
		if err != nil || mnt == initMnt {
			continue
		}
		if _, seen := onlyShims[mnt]; !seen {
			onlyShims[mnt] = true
		}
		members[mnt] = append(members[mnt], pid)
		if readComm(pid) != "containerd-shim" {
			onlyShims[mnt] = false
		}
	}
	orphan := map[int]bool{}
	var out []string
	for mnt, only := range onlyShims {
		if !only {
			continue
		}
		for _, pid := range members[mnt] {
			orphan[pid] = true
			out = append(out, fmt.Sprintf("containerd-shim %d (%s)", pid, mnt))
		}
	}
	if len(orphan) == 0 {
		return nil
	}
	for pid := range parent {
		for p, hops := pid, 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if orphan[p] {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				break
			}
		}
	}
	return out
}
