package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ownerFile, in a node's temp dir, names the process that owns the node:
// "<pid> <start time in clock ticks>".
const ownerFile = "owner"

// writeOwner records the current process as the node's owner.
func writeOwner(dir string) error {
	start, err := procStart(os.Getpid())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), fmt.Appendf(nil, "%d %s\n", os.Getpid(), start), 0o644)
}

// Sweep deletes the namespaces and temp dirs of nodes whose owning process
// is gone. A test binary that panics or is killed never runs its cleanups;
// New sweeps so that such leftovers do not pile up. Nodes of live
// processes, and namespaces without an owner record, are left alone.
func Sweep() (removed []string, err error) {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), "np-node-*-*", ownerFile))
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, f := range dirs {
		dir := filepath.Dir(f)
		if ownerAlive(f) {
			continue
		}
		// dir is np-node-<suffix>-<random>.
		suffix, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(dir), "np-node-"), "-")
		if !ok || suffix == "" {
			continue
		}
		names, err := staleNetNS(suffix)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, name := range names {
			if err := deleteNetNS(name); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, name)
		}
		errs = append(errs, os.RemoveAll(dir))
	}
	return removed, errors.Join(errs...)
}

// staleNetNS lists the namespaces of the node with this suffix.
func staleNetNS(suffix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if n == "np-node-"+suffix || strings.HasPrefix(n, "np-pod-"+suffix+"-") ||
			strings.HasPrefix(n, "np-out-"+suffix+"-") || strings.HasPrefix(n, "np-ul-"+suffix+"-") {
			names = append(names, n)
		}
	}
	return names, nil
}

// ownerAlive reports whether the process recorded in an owner file still
// runs (same PID and start time). Unreadable records count as alive.
func ownerAlive(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return true
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return true
	}
	start, err := procStart(pid)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	return err != nil || start == f[1]
}

// procStart returns field 22 (starttime) of /proc/PID/stat.
func procStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name (field 2) may hold spaces: split after its ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	const startField = 22 - 3 // fields after ')' start at field 3
	if len(fields) <= startField {
		return "", fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return fields[startField], nil
}
