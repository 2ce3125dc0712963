// Package image builds container image archives on this machine, without a
// registry and without docker, for the real-node tests and `make image`.
//
// An image is a list of layers (each one a directory tree on disk, written
// as one uncompressed-then-gzipped tar layer) plus a config (entrypoint,
// command, environment), assembled with go-containerregistry (empty.Image,
// mutate.Append, mutate.Config) and written with tarball.MultiRefWrite as a
// docker-style archive (manifest.json + repositories) that
// `ctr -n k8s.io images import FILE` loads under the image's name.
//
// Rootfs trees come from our own static binaries (Files) and from Debian
// packages fetched with `apt-get download` and unpacked with `dpkg-deb -x`
// (Closure, Download and Unpack in deb.go).
package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Spec describes one image.
type Spec struct {
	// Ref is the image's name as the runtime will know it, e.g.
	// "localhost/netpol-pause:1" or "registry.k8s.io/e2e-test-images/agnhost:2.66.1".
	Ref string
	// Layers are rootfs directories, bottom first; each becomes one layer.
	Layers []string
	// Entrypoint, Cmd, Env and WorkingDir go into the image config.
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
}

// epoch is the timestamp of every file and of the image: archives built
// from the same trees are byte-identical.
var epoch = time.Unix(0, 0).UTC()

// Build assembles the image of spec for linux/amd64 (the host's platform).
func Build(spec Spec) (v1.Image, error) {
	if _, err := name.ParseReference(spec.Ref); err != nil {
		return nil, fmt.Errorf("image ref %q: %w", spec.Ref, err)
	}
	img := empty.Image
	for _, dir := range spec.Layers {
		data, err := TarDir(dir)
		if err != nil {
			return nil, fmt.Errorf("image %s: layer %s: %w", spec.Ref, dir, err)
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		if err != nil {
			return nil, fmt.Errorf("image %s: layer %s: %w", spec.Ref, dir, err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return nil, fmt.Errorf("image %s: layer %s: %w", spec.Ref, dir, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created = "amd64", "linux", v1.Time{Time: epoch}
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.Env = spec.Env
	cf.Config.WorkingDir = spec.WorkingDir
	return mutate.ConfigFile(img, cf)
}

// Write writes images into one archive at path (docker-style tarball, one
// entry per name), replacing the file atomically.
func Write(path string, images map[string]v1.Image) error {
	refs := make(map[name.Reference]v1.Image, len(images))
	for r, img := range images {
		ref, err := name.ParseReference(r)
		if err != nil {
			return fmt.Errorf("image ref %q: %w", r, err)
		}
		refs[ref] = img
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	werr := tarball.MultiRefWrite(refs, f)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// BuildAndWrite builds each spec and writes them all into one archive.
func BuildAndWrite(path string, specs ...Spec) error {
	images := make(map[string]v1.Image, len(specs))
	for _, s := range specs {
		img, err := Build(s)
		if err != nil {
			return err
		}
		images[s.Ref] = img
	}
	return Write(path, images)
}

// TarDir returns a tar stream of the tree under dir, paths relative to it,
// sorted, with owner root:root, the files' modes and a fixed timestamp.
// Regular files, directories and symbolic links are kept; anything else
// (devices, sockets) is an error.
func TarDir(dir string) ([]byte, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		if err := addEntry(tw, dir, p); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func addEntry(tw *tar.Writer, root, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return err
	}
	hdr := &tar.Header{
		Name: filepath.ToSlash(rel), Mode: int64(fi.Mode().Perm()), ModTime: epoch,
		Uname: "root", Gname: "root", Format: tar.FormatPAX,
	}
	if fi.Mode()&fs.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	switch {
	case fi.Mode().IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	case fi.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
	case fi.Mode()&fs.ModeSymlink != 0:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = os.Readlink(p); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: unsupported file type %s", p, fi.Mode().Type())
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// File is one file to place into a rootfs tree.
type File struct {
	Src  string      // host file to copy
	Dst  string      // absolute path inside the image, e.g. /usr/local/bin/netpol
	Mode fs.FileMode // 0: 0755
}

// Files writes files into the rootfs tree dir (created as needed).
func Files(dir string, files ...File) error {
	for _, f := range files {
		if !strings.HasPrefix(f.Dst, "/") {
			return fmt.Errorf("file %s: destination %q is not absolute", f.Src, f.Dst)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, f.Dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			return err
		}
		if err := os.Chmod(dst, mode); err != nil {
			return err
		}
	}
	return nil
}
