package image

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// libDirs are where the dynamic loader of a merged-/usr amd64 Debian
// looks for libraries without an ld.so.cache.
var libDirs = []string{"usr/lib/x86_64-linux-gnu", "usr/lib", "usr/lib64"}

// MissingLibraries checks every ELF file in the rootfs tree root: each
// library it needs (DT_NEEDED) must be in the tree, in libDirs or in its
// own RUNPATH/RPATH ($ORIGIN honoured), and its program interpreter must
// exist. It returns what is missing ("FILE needs LIB") and how many ELF
// files it checked.
func MissingLibraries(root string) ([]string, int, error) {
	var missing []string
	checked := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := elf.Open(p)
		if err != nil {
			return nil // not an ELF file
		}
		defer f.Close()
		checked++
		rel := "/" + strings.TrimPrefix(p, root+"/")
		if interp := interpreter(f); interp != "" && !exists(root, interp) {
			missing = append(missing, rel+" needs "+interp)
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		dirs := append(slices.Clone(libDirs), runPaths(f, filepath.Dir(rel))...)
		for _, lib := range needed {
			if !slices.ContainsFunc(dirs, func(dir string) bool { return exists(root, filepath.Join(dir, lib)) }) {
				missing = append(missing, rel+" needs "+lib)
			}
		}
		return nil
	})
	return missing, checked, err
}

// isDynamic reports whether the ELF file at path needs a loader.
func isDynamic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	return interpreter(f) != "", nil
}

// interpreter is the ELF file's PT_INTERP, or "".
func interpreter(f *elf.File) string {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				return strings.TrimRight(string(b), "\x00")
			}
		}
	}
	return ""
}

// runPaths are the file's RUNPATH and RPATH dirs, $ORIGIN being dir.
func runPaths(f *elf.File, dir string) []string {
	var out []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		paths, _ := f.DynString(tag)
		for _, rp := range paths {
			for _, d := range filepath.SplitList(rp) {
				out = append(out, strings.ReplaceAll(d, "$ORIGIN", dir))
			}
		}
	}
	return out
}

// exists reports whether path (absolute inside the image) exists in the
// tree root, resolved as the kernel would with root as "/": symbolic links
// (at most 40) are followed inside the tree, absolute ones from root.
func exists(root, path string) bool {
	todo := strings.Split(strings.Trim(path, "/"), "/")
	cur := "/"
	for links := 0; len(todo) > 0; {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return false
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return false
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return false
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(strings.Trim(target, "/"), "/"), todo...)
	}
	return true
}
