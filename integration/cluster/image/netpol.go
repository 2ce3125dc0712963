package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NetpolPackages are the Debian packages of the netpol image: the tools
// the agent drives, and busybox-static (no Depends) for the shell and
// sleep that deploy/uninstall.yaml's last container runs, as
// deploy/Dockerfile's Debian base has them. The image holds exactly them
// and their Depends closure (Closure).
var NetpolPackages = []string{"iptables", "ipset", "busybox-static"}

// NetpolToolChecks are run chrooted in the unpacked tools (CheckTools):
// both iptables backends and ipset must start, with every library found.
var NetpolToolChecks = [][]string{
	{"/usr/sbin/iptables-nft", "--version"},
	{"/usr/sbin/ip6tables-nft", "--version"},
	{"/usr/sbin/iptables-legacy", "--version"},
	{"/usr/sbin/ip6tables-legacy", "--version"},
	{"/usr/sbin/iptables", "--version"},
	{"/usr/sbin/ipset", "--version"},
	{"/bin/sh", "-c", "exit 0"},
	{"/bin/sleep", "0"},
}

// busyboxApplets are the programs deploy/uninstall.yaml runs that the
// image takes from busybox (links in /bin, as busybox --install makes).
var busyboxApplets = []string{"sh", "sleep"}

// imagePath is the PATH of the images built here (Debian's default).
const imagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// alternatives are the links Debian's iptables postinst makes through
// update-alternatives (dpkg-deb -x runs no maintainer scripts); like
// Debian, the plain names are the nft backend.
var alternatives = map[string]string{
	"iptables": "iptables-nft", "iptables-save": "iptables-nft-save", "iptables-restore": "iptables-nft-restore",
	"ip6tables": "ip6tables-nft", "ip6tables-save": "ip6tables-nft-save", "ip6tables-restore": "ip6tables-nft-restore",
}

// NetpolTools unpacks NetpolPackages and their closure into the rootfs
// tree <Cache>/rootfs/netpol-tools, adds the alternatives links, checks
// that every library is there (MissingLibraries) and runs
// NetpolToolChecks chrooted in it. It returns the tree and the packages
// it holds (.debs are kept in Builder.Debs).
func (b *Builder) NetpolTools(ctx context.Context) (string, []string, error) {
	root, pkgs, err := b.debRootfs(ctx, "netpol-tools", NetpolPackages)
	if err != nil {
		return "", nil, err
	}
	for name, target := range alternatives {
		if err := os.Symlink(target, filepath.Join(root, "usr", "sbin", name)); err != nil {
			return "", nil, err
		}
	}
	for _, name := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", name)); err != nil {
			return "", nil, err
		}
	}
	if err := checkRootfs(ctx, root, NetpolToolChecks); err != nil {
		return "", nil, fmt.Errorf("netpol tools: %w", err)
	}
	return root, pkgs, nil
}

// debRootfs makes the rootfs tree <Cache>/rootfs/<name> of pkgs and their
// Depends closure, downloaded into Builder.Debs.
func (b *Builder) debRootfs(ctx context.Context, name string, pkgs []string) (string, []string, error) {
	if err := b.init(); err != nil {
		return "", nil, err
	}
	closure, err := Closure(ctx, pkgs...)
	if err != nil {
		return "", nil, err
	}
	b.Log("image: %s from %s", name, strings.Join(closure, " "))
	debs, err := Download(ctx, b.Debs, closure)
	if err != nil {
		return "", nil, err
	}
	root, err := b.rootfs(name)
	if err != nil {
		return "", nil, err
	}
	return root, closure, Unpack(ctx, root, debs)
}

// checkRootfs fails unless every ELF file in root finds its libraries
// there and each check program exits 0 chrooted in it.
func checkRootfs(ctx context.Context, root string, checks [][]string) error {
	missing, _, err := MissingLibraries(root)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("libraries missing in %s: %s", root, strings.Join(missing, "; "))
	}
	for _, c := range checks {
		if _, err := RunIn(ctx, root, c...); err != nil {
			return err
		}
	}
	return nil
}

// RunIn runs a program chrooted in the rootfs tree root, in new network
// and mount namespaces (so nothing it does can reach the machine's
// firewall), and returns its combined output. Equivalent to:
// unshare --net --mount -- chroot ROOT ARGS...
func RunIn(ctx context.Context, root string, args ...string) ([]byte, error) {
	return runCmd(ctx, "", "unshare", append([]string{"--net", "--mount", "--", "chroot", root}, args...)...)
}

// Netpol builds the netpol image (NetpolRef) into <Cache>/netpol.tar: a
// layer of the Debian tools (NetpolTools) and a layer with static
// /usr/local/bin/netpol and /usr/local/bin/netpol-agent built from Repo
// (the same build as deploy/Dockerfile's). Entrypoint netpol-agent.
func (b *Builder) Netpol(ctx context.Context) (string, error) {
	tools, _, err := b.NetpolTools(ctx)
	if err != nil {
		return "", err
	}
	bins, err := b.rootfs("netpol-bin")
	if err != nil {
		return "", err
	}
	for _, name := range []string{"netpol", "netpol-agent"} {
		pkg := "./plugin/cmd/netpol"
		if name == "netpol-agent" {
			pkg = "./agent/cmd/netpol-agent"
		}
		out := filepath.Join(b.Cache, "bin", name)
		b.Log("image: go build %s", pkg)
		if err := GoBuild(ctx, b.Repo, pkg, out, SmallFlags...); err != nil {
			return "", err
		}
		if err := Files(bins, File{Src: out, Dst: "/usr/local/bin/" + name}); err != nil {
			return "", err
		}
	}
	out := filepath.Join(b.Cache, "netpol.tar")
	b.Log("image: writing %s (%s)", out, NetpolRef)
	return out, BuildAndWrite(out, Spec{
		Ref: NetpolRef, Layers: []string{tools, bins},
		Entrypoint: []string{"/usr/local/bin/netpol-agent"}, Env: []string{imagePath},
	})
}

// AgnhostPackages are the Debian packages under a dynamically linked
// agnhost (with their Depends closure): glibc, for libc.so.6, libresolv
// and the loader.
var AgnhostPackages = []string{"libc6"}

// Agnhost builds the agnhost image (AgnhostRef) into <Cache>/agnhost.tar:
// /agnhost, entrypoint /agnhost, command "pause", as upstream's image.
// bin is a prebuilt agnhost (e.g. hack/k8s-build.sh's); when empty it is
// built from k8s.io/kubernetes/test/images/agnhost of the
// integration/cluster module with GoBuildShared (hack/k8s-build.sh's
// settings, sharing its Go build cache). A dynamically linked agnhost gets
// AgnhostPackages in the same layer; the build checks its libraries and
// runs `/agnhost --help` chrooted in the tree.
func (b *Builder) Agnhost(ctx context.Context, bin string) (string, error) {
	if err := b.init(); err != nil {
		return "", err
	}
	if bin == "" {
		bin = filepath.Join(b.Cache, "bin", "agnhost")
		b.Log("image: go build agnhost")
		if err := GoBuildShared(ctx, filepath.Join(b.Repo, "integration", "cluster"), "k8s.io/kubernetes/test/images/agnhost", bin, "-mod=mod"); err != nil {
			return "", err
		}
	}
	dynamic, err := isDynamic(bin)
	if err != nil {
		return "", err
	}
	var root string
	if dynamic {
		root, _, err = b.debRootfs(ctx, "agnhost", AgnhostPackages)
	} else {
		root, err = b.rootfs("agnhost")
	}
	if err != nil {
		return "", err
	}
	if err := Files(root, File{Src: bin, Dst: "/agnhost"}); err != nil {
		return "", err
	}
	if err := checkRootfs(ctx, root, [][]string{{"/agnhost", "--help"}}); err != nil {
		return "", fmt.Errorf("agnhost image: %w", err)
	}
	out := filepath.Join(b.Cache, "agnhost.tar")
	b.Log("image: writing %s (%s)", out, AgnhostRef)
	return out, BuildAndWrite(out, Spec{
		Ref: AgnhostRef, Layers: []string{root},
		Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{imagePath},
	})
}
