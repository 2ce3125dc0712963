package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NetpolPackages are the Debian packages of the netpol image: the tools
// the agent drives. The image holds exactly them and their Depends closure
// (Closure).
var NetpolPackages = []string{"iptables", "ipset"}

// NetpolToolChecks are run chrooted in the unpacked tools (CheckTools):
// both iptables backends and ipset must start, with every library found.
var NetpolToolChecks = [][]string{
	{"/usr/sbin/iptables-nft", "--version"},
	{"/usr/sbin/ip6tables-nft", "--version"},
	{"/usr/sbin/iptables-legacy", "--version"},
	{"/usr/sbin/ip6tables-legacy", "--version"},
	{"/usr/sbin/iptables", "--version"},
	{"/usr/sbin/ipset", "--version"},
}

// imagePath is the PATH of the images built here (Debian's default).
const imagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// alternatives are the links Debian's iptables postinst makes through
// update-alternatives (dpkg-deb -x runs no maintainer scripts); like
// Debian, the plain names are the nft backend.
var alternatives = map[string]string{
	"iptables": "iptables-nft", "iptables-save": "iptables-nft-save", "iptables-restore": "iptables-nft-restore",
	"ip6tables": "ip6tables-nft", "ip6tables-save": "ip6tables-nft-save", "ip6tables-restore": "ip6tables-nft-restore",
}

// NetpolTools unpacks NetpolPackages and their closure into the rootfs tree <Cache>/rootfs/netpol-tools, adds the
// alternatives links, checks NetpolToolChecks in it and returns its path
// and the packages it holds (.debs are kept in Builder.Debs).
func (b *Builder) NetpolTools(ctx context.Context) (string, []string, error) {
	if err := b.init(); err != nil {
		return "", nil, err
	}
	pkgs, err := Closure(ctx, NetpolPackages...)
	if err != nil {
		return "", nil, err
	}
	b.Log("image: netpol tools from %s", strings.Join(pkgs, " "))
	debs, err := Download(ctx, b.Debs, pkgs)
	if err != nil {
		return "", nil, err
	}
	root, err := b.rootfs("netpol-tools")
	if err != nil {
		return "", nil, err
	}
	if err := Unpack(ctx, root, debs); err != nil {
		return "", nil, err
	}
	for name, target := range alternatives {
		if err := os.Symlink(target, filepath.Join(root, "usr", "sbin", name)); err != nil {
			return "", nil, err
		}
	}
	for _, c := range NetpolToolChecks {
		if _, err := RunIn(ctx, root, c...); err != nil {
			return "", nil, fmt.Errorf("netpol tools: %w", err)
		}
	}
	return root, pkgs, nil
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

// Agnhost builds the agnhost image (AgnhostRef) into <Cache>/agnhost.tar:
// the static agnhost binary as /agnhost, entrypoint /agnhost, command
// "pause", as upstream's image. bin is a prebuilt static agnhost (e.g.
// from hack/k8s-build.sh); when empty it is built from
// k8s.io/kubernetes/test/images/agnhost of the integration/cluster module
// with the same command as hack/k8s-build.sh (CGO_ENABLED=0, no other
// flags, GOFLAGS=-mod=mod), so that the two share the Go build cache.
func (b *Builder) Agnhost(ctx context.Context, bin string) (string, error) {
	if err := b.init(); err != nil {
		return "", err
	}
	if bin == "" {
		bin = filepath.Join(b.Cache, "bin", "agnhost")
		b.Log("image: go build agnhost")
		if err := GoBuild(ctx, filepath.Join(b.Repo, "integration", "cluster"), "k8s.io/kubernetes/test/images/agnhost", bin, "-mod=mod"); err != nil {
			return "", err
		}
	}
	root, err := b.rootfs("agnhost")
	if err != nil {
		return "", err
	}
	if err := Files(root, File{Src: bin, Dst: "/agnhost"}); err != nil {
		return "", err
	}
	out := filepath.Join(b.Cache, "agnhost.tar")
	b.Log("image: writing %s (%s)", out, AgnhostRef)
	return out, BuildAndWrite(out, Spec{
		Ref: AgnhostRef, Layers: []string{root},
		Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{imagePath},
	})
}
