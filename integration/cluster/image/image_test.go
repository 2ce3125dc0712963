package image_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/netpol/netpol/integration/cluster/image"
)

// TestBuildWriteReadBack: an archive written by Write reads back (as the
// runtime's import reads it) with the name, config and files it was
// built with: modes, symlinks, fixed timestamps, root ownership.
func TestBuildWriteReadBack(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(src, []byte("#!/bin/true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := image.Files(root, image.File{Src: src, Dst: "/usr/local/bin/prog"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/local/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "x.tar")
	spec := image.Spec{Ref: "localhost/x:1", Layers: []string{root},
		Entrypoint: []string{"/usr/local/bin/prog"}, Cmd: []string{"a"}, Env: []string{"PATH=/bin"}}
	if err := image.BuildAndWrite(archive, spec); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("localhost/x:1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatalf("reading back %s: %v", archive, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !slices.Equal(cf.Config.Entrypoint, spec.Entrypoint) ||
		!slices.Equal(cf.Config.Cmd, spec.Cmd) || !slices.Equal(cf.Config.Env, spec.Env) {
		t.Errorf("config = %s/%s entrypoint %q cmd %q env %q; want linux/amd64 and the spec's", cf.OS, cf.Architecture,
			cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.Env)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d (%v); want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: uid %d gid %d mtime %v; want root and the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		got = append(got, h.Name+" "+h.FileInfo().Mode().String()+" "+h.Linkname)
	}
	want := []string{"bin Lrwxrwxrwx usr/local/bin", "usr/ drwxr-xr-x ", "usr/local/ drwxr-xr-x ",
		"usr/local/bin/ drwxr-xr-x ", "usr/local/bin/prog -rwxr-xr-x "}
	if !slices.Equal(got, want) {
		t.Errorf("layer entries:\n%q\nwant\n%q", got, want)
	}
}

// TestMissingLibraries: a dynamically linked program alone in a tree
// lacks its loader and libc; with glibc's files (as the agnhost image has
// them) nothing is missing.
func TestMissingLibraries(t *testing.T) {
	root := t.TempDir()
	if err := image.Files(root, image.File{Src: "/bin/true", Dst: "/true"}); err != nil {
		t.Fatal(err)
	}
	missing, checked, err := image.MissingLibraries(root)
	if err != nil || checked != 1 {
		t.Fatalf("checked %d files (%v); want 1", checked, err)
	}
	want := []string{"/true needs /lib64/ld-linux-x86-64.so.2", "/true needs libc.so.6"}
	if !slices.Equal(missing, want) {
		t.Errorf("missing = %q; want %q", missing, want)
	}
}

// TestNetpolToolsClosure unpacks iptables and ipset with their Depends
// closure (as the netpol image has them; NetpolTools already ran every
// NetpolToolChecks program chrooted in it) and checks that every ELF file
// in the tree, the xtables extensions included, finds each library it
// needs inside the tree: nothing is missing that a later code path loads.
func TestNetpolToolsClosure(t *testing.T) {
	for _, p := range []string{"apt-cache", "apt-get", "dpkg-deb", "unshare", "chroot"} {
		if _, err := exec.LookPath(p); err != nil || os.Geteuid() != 0 {
			if os.Getenv("NETPOL_REQUIRE_CLUSTER") == "1" {
				t.Fatalf("needs root and %s", p)
			}
			t.Skipf("needs root and %s", p)
		}
	}
	repo, err := image.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b := &image.Builder{Cache: t.TempDir(), Debs: filepath.Join(repo, ".cache", "images", "debs")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root, pkgs, err := b.NetpolTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"iptables", "ipset", "libc6"} {
		if !slices.Contains(pkgs, p) {
			t.Errorf("packages %v lack %s", pkgs, p)
		}
	}
	missing, checked, err := image.MissingLibraries(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range missing {
		t.Errorf("not in the image: %s", m)
	}
	if checked < 10 {
		t.Errorf("only %d ELF files checked; the tree looks incomplete", checked)
	}
	t.Logf("%d ELF files of %d packages (%s): every needed library present", checked, len(pkgs), strings.Join(pkgs, " "))
}
