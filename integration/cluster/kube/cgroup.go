package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// cgroupMount is where the machine's cgroup v1 hierarchies are mounted
// (one directory per controller; "unified" is the v2 one).
const cgroupMount = "/sys/fs/cgroup"

// CgroupRoot is the kubelet's cgroupRoot for node: one cgroup per test
// node, so that its pods' cgroups (kubepods/...) never mix with another
// test's and can all be removed.
func CgroupRoot(node string) string { return "/netpol-" + node }

// CreateCgroupRoot makes CgroupRoot(node) in every hierarchy (the kubelet
// requires its cgroupRoot to exist).
// Equivalent to: mkdir /sys/fs/cgroup/*/netpol-NODE
func CreateCgroupRoot(node string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		if err := os.MkdirAll(filepath.Join(h, CgroupRoot(node)), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// RemoveCgroupRoot removes CgroupRoot(node) and every cgroup below it in
// every hierarchy, deepest first (a cgroup is removed with rmdir once it
// has no processes and no children). Call it after every process of the
// node is gone.
func RemoveCgroupRoot(node string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		root := filepath.Join(h, CgroupRoot(node))
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// hierarchies lists the cgroup v1 hierarchy mount points.
func hierarchies() ([]string, error) {
	entries, err := os.ReadDir(cgroupMount)
	if err != nil {
		return nil, err
	}
	var hs []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "unified" && !strings.Contains(e.Name(), ",") {
			hs = append(hs, filepath.Join(cgroupMount, e.Name()))
		}
	}
	return hs, nil
}
