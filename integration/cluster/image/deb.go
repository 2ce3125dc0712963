package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Closure returns pkgs and every package they depend on (Depends and
// PreDepends, recursively; no Recommends or Suggests), as apt sees them on
// this machine, sorted. Equivalent to: apt-cache depends --recurse
// --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces
// --no-enhances PKGS (package lines only, virtual packages dropped).
func Closure(ctx context.Context, pkgs ...string) ([]string, error) {
	args := append([]string{"depends", "--recurse", "--no-recommends", "--no-suggests",
		"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"}, pkgs...)
	out, err := runCmd(ctx, "", "apt-cache", args...)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "<") {
			continue
		}
		seen[strings.TrimSpace(line)] = true
	}
	for _, p := range pkgs {
		if !seen[p] {
			return nil, fmt.Errorf("apt-cache depends: package %q unknown (apt-get update?)", p)
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Download returns the .deb of every package in pkgs from dir, fetching
// the missing ones with `apt-get download` (the candidate version). It
// runs `apt-get update` once if apt knows none of them yet.
func Download(ctx context.Context, dir string, pkgs []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var missing []string
	debs := map[string]string{}
	for _, p := range pkgs {
		if f := cachedDeb(dir, p); f != "" {
			debs[p] = f
		} else {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		if _, err := runCmd(ctx, dir, "apt-get", append([]string{"download", "-qq"}, missing...)...); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		if debs[p] == "" {
			if debs[p] = cachedDeb(dir, p); debs[p] == "" {
				return nil, fmt.Errorf("apt-get download %s: no %s_*.deb in %s", p, p, dir)
			}
		}
		out = append(out, debs[p])
	}
	return out, nil
}

// cachedDeb is the newest dir/PKG_*.deb, or "".
func cachedDeb(dir, pkg string) string {
	matches, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	best, bestTime := "", time.Time{}
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.ModTime().After(bestTime) {
			best, bestTime = m, fi.ModTime()
		}
	}
	return best
}

// Unpack extracts each .deb into the rootfs tree dir with `dpkg-deb -x`
// (no maintainer scripts run) and lays the result out as merged /usr
// (bin, sbin, lib, lib64 are links into usr/), whichever layout the
// packages use.
func Unpack(ctx context.Context, dir string, debs []string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := mergedUsr(dir); err != nil {
		return err
	}
	for i, deb := range debs {
		x := filepath.Join(tmp, fmt.Sprint(i))
		if _, err := runCmd(ctx, "", "dpkg-deb", "-x", deb, x); err != nil {
			return err
		}
		if err := mergeTree(x, dir); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(deb), err)
		}
	}
	return nil
}

// usrLinks are the top-level directories of a merged-/usr system.
var usrLinks = []string{"bin", "sbin", "lib", "lib64"}

func mergedUsr(dir string) error {
	for _, d := range usrLinks {
		if err := os.MkdirAll(filepath.Join(dir, "usr", d), 0o755); err != nil {
			return err
		}
		link := filepath.Join(dir, d)
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink("usr/"+d, link); err != nil {
				return err
			}
		}
	}
	return nil
}

// mergeTree copies the tree src into the rootfs dst, moving the top-level
// bin, sbin, lib and lib64 of src under usr/.
func mergeTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		for _, l := range usrLinks {
			if top == l {
				rel = filepath.Join("usr", rel)
			}
		}
		target := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			return os.MkdirAll(target, fi.Mode().Perm())
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			_ = os.Remove(target)
			return os.Symlink(link, target)
		case fi.Mode().IsRegular():
			return copyFile(p, target, fi.Mode())
		}
		return fmt.Errorf("%s: unsupported file type %s", rel, fi.Mode().Type())
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	_ = os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}

// runCmd runs a command (in dir when set) bounded to 10 minutes and
// returns stdout; the error carries stderr.
func runCmd(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
