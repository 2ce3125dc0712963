package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Names of the images built here.
const (
	// PauseRef is the pod sandbox image: our netpol-pause program alone.
	PauseRef = "localhost/netpol-pause:1"
	// NetpolRef is the netpol image (deploy/netpol.yaml's, without a
	// registry): the plugin, the agent, iptables and ipset.
	NetpolRef = "netpol:latest"
	// AgnhostRef is the name the upstream e2e suite uses for agnhost
	// (k8s.io/kubernetes/test/utils/image/manifest.go at v1.37.1).
	AgnhostRef = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
)

// Builder builds the images' binaries and rootfs trees under Cache and
// writes archives there.
type Builder struct {
	// Cache holds archives (<Cache>/<name>.tar), rootfs trees
	// (<Cache>/rootfs/<name>) and downloaded .debs (<Cache>/debs).
	Cache string
	// Debs is where downloaded .debs are kept (default <Cache>/debs).
	Debs string
	// Repo is the netpol repository root (default: found above the
	// working directory).
	Repo string
	// Log, when set, receives one line per step.
	Log func(format string, args ...any)
}

func (b *Builder) init() error {
	if b.Cache == "" {
		return errors.New("image: Builder.Cache is required")
	}
	var err error
	if b.Cache, err = filepath.Abs(b.Cache); err != nil {
		return err
	}
	if b.Repo == "" {
		if b.Repo, err = RepoRoot(); err != nil {
			return err
		}
	}
	if b.Debs == "" {
		b.Debs = filepath.Join(b.Cache, "debs")
	}
	if b.Log == nil {
		b.Log = func(string, ...any) {}
	}
	return os.MkdirAll(b.Cache, 0o755)
}

// rootfs returns an empty rootfs tree <Cache>/rootfs/<name>.
func (b *Builder) rootfs(name string) (string, error) {
	dir := filepath.Join(b.Cache, "rootfs", name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// Pause builds localhost/netpol-pause (cmd/netpol-pause, static, as
// /pause) into <Cache>/netpol-pause.tar and returns the archive's path.
func (b *Builder) Pause(ctx context.Context) (string, error) {
	if err := b.init(); err != nil {
		return "", err
	}
	root, err := b.rootfs("netpol-pause")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(b.Cache, "bin", "netpol-pause")
	if err := GoBuild(ctx, filepath.Join(b.Repo, "integration", "cluster"), "./cmd/netpol-pause", bin, SmallFlags...); err != nil {
		return "", err
	}
	if err := Files(root, File{Src: bin, Dst: "/pause"}); err != nil {
		return "", err
	}
	out := filepath.Join(b.Cache, "netpol-pause.tar")
	b.Log("image: writing %s (%s)", out, PauseRef)
	return out, BuildAndWrite(out, Spec{Ref: PauseRef, Layers: []string{root}, Entrypoint: []string{"/pause"}})
}

// SmallFlags are the go build flags of our own binaries in the images
// (deploy/Dockerfile's): no file paths, no symbol table.
var SmallFlags = []string{"-trimpath", "-ldflags=-s -w"}

// GoBuild builds a static binary: CGO_ENABLED=0 go build FLAGS -o out
// pkg, run in dir (the module to build from).
func GoBuild(ctx context.Context, dir, pkg, out string, flags ...string) error {
	return goBuild(ctx, dir, pkg, out, []string{"CGO_ENABLED=0"}, flags)
}

// GoBuildShared builds with the environment's cgo setting (cgo on where a
// C compiler is): the configuration hack/k8s-build.sh builds the kubelet
// and e2e.test with, so that the Go build cache of the Kubernetes tree is
// shared instead of compiled a second time. The binary may need glibc.
func GoBuildShared(ctx context.Context, dir, pkg, out string, flags ...string) error {
	return goBuild(ctx, dir, pkg, out, nil, flags)
}

func goBuild(ctx context.Context, dir, pkg, out string, env, flags []string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s (in %s): %w: %s", pkg, dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// RepoRoot walks up from the working directory to the netpol repository
// root (the go.mod of module github.com/netpol/netpol).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 64; i++ {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/netpol/netpol\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("no go.mod of github.com/netpol/netpol above the working directory")
}
