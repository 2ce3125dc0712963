package ipt

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Mode is the iptables backend the Runner drives.
type Mode string

const (
	// ModeAuto (or the zero value) makes a Runner call DetectMode on first use.
	ModeAuto Mode = "auto"
	// ModeNFT uses iptables-nft, iptables-nft-save, iptables-nft-restore
	// (and the ip6tables-nft-* twins).
	ModeNFT Mode = "nft"
	// ModeLegacy uses iptables-legacy, iptables-legacy-save, ...
	ModeLegacy Mode = "legacy"
	// ModePlain uses the unsuffixed iptables, iptables-save, ... whatever
	// backend they are: DetectMode picks it when only those exist.
	ModePlain Mode = "plain"
)

// hintChains are the chains kubelet and kube-proxy create in the mangle table
// of the backend the node really uses.
var hintChains = []string{":KUBE-IPTABLES-HINT ", ":KUBE-KUBELET-CANARY "}

// binary returns the name of an iptables tool of mode for fam; tool is "",
// "-save" or "-restore".
func (m Mode) binary(fam Family, tool string) string {
	base := "iptables"
	if fam == IPv6 {
		base = "ip6tables"
	}
	switch m {
	case ModeNFT:
		return base + "-nft" + tool
	case ModeLegacy:
		return base + "-legacy" + tool
	}
	return base + tool
}

// modeFacts is what DetectMode learns from the machine.
type modeFacts struct {
	NFT, Legacy, Plain    bool // which binaries exist
	NFTHint, LegacyHint   bool // kubelet/kube-proxy hint chains seen
	NFTRules, LegacyRules int  // rules in all tables of both families
}

// chooseMode is the decision of DetectMode, as kube-proxy's iptables-wrapper
// makes it: with both backends installed, the one holding the kubelet hint
// chains wins, then the one holding more rules, and nft on a tie; with one
// backend, that one; with only the unsuffixed binaries, ModePlain.
func chooseMode(f modeFacts) (Mode, error) {
	switch {
	case f.NFT && f.Legacy:
		switch {
		case f.NFTHint:
			return ModeNFT, nil
		case f.LegacyHint:
			return ModeLegacy, nil
		case f.LegacyRules > f.NFTRules:
			return ModeLegacy, nil
		}
		return ModeNFT, nil
	case f.NFT:
		return ModeNFT, nil
	case f.Legacy:
		return ModeLegacy, nil
	case f.Plain:
		return ModePlain, nil
	}
	return "", fmt.Errorf("no iptables binaries found (iptables-nft-restore, iptables-legacy-restore or iptables-restore)")
}

// DetectMode picks the iptables backend of the network namespace the process
// runs in (or netns, when not empty, through `ip netns exec`). It reads
// `iptables-legacy-save` and `ip6tables-legacy-save` of every table, and
// the nft twins unless the legacy tables alone decide (see
// legacyDecides); a backend that cannot be read counts as empty.
func DetectMode(ctx context.Context, netns string) (Mode, error) {
	have := func(bin string) bool { _, err := exec.LookPath(bin); return err == nil }
	f := modeFacts{
		NFT:    have("iptables-nft-restore") && have("iptables-nft-save"),
		Legacy: have("iptables-legacy-restore") && have("iptables-legacy-save"),
		Plain:  have("iptables-restore") && have("iptables-save"),
	}
	if f.NFT && f.Legacy {
		r := &Runner{NetNS: netns}
		f.LegacyHint, f.LegacyRules = r.saveFacts(ctx, ModeLegacy)
		if !legacyDecides(f) {
			f.NFTHint, f.NFTRules = r.saveFacts(ctx, ModeNFT)
		}
	}
	return chooseMode(f)
}

// legacyDecides reports whether chooseMode's answer for f does not depend
// on the nft facts: with no hint chain and no rule in the legacy tables,
// nft wins whatever they hold. This spares reading every nft table (with
// our own rules in them, the costliest part of a first sync's start on an
// nft node) where legacy is empty, as on current distributions.
func legacyDecides(f modeFacts) bool {
	return !f.LegacyHint && f.LegacyRules == 0
}

// saveFacts reads every table of both families of mode and reports whether
// a hint chain exists and how many rules there are. Errors count as empty.
func (r *Runner) saveFacts(ctx context.Context, m Mode) (hint bool, rules int) {
	for _, fam := range Families {
		out, err := r.run(ctx, nil, m.binary(fam, "-save"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "-") {
				rules++
			}
			for _, h := range hintChains {
				hint = hint || strings.HasPrefix(line, h)
			}
		}
	}
	return hint, rules
}
