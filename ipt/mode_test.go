package ipt

import "testing"

func TestChooseMode(t *testing.T) {
	tests := []struct {
		name  string
		facts modeFacts
		want  Mode
	}{
		{"both, empty", modeFacts{NFT: true, Legacy: true, Plain: true}, ModeNFT},
		{"both, legacy has more rules", modeFacts{NFT: true, Legacy: true, LegacyRules: 12, NFTRules: 3}, ModeLegacy},
		{"both, tie", modeFacts{NFT: true, Legacy: true, LegacyRules: 3, NFTRules: 3}, ModeNFT},
		{"both, legacy hint", modeFacts{NFT: true, Legacy: true, LegacyHint: true, NFTRules: 50}, ModeLegacy},
		{"both, nft hint wins over legacy hint", modeFacts{NFT: true, Legacy: true, NFTHint: true, LegacyHint: true, LegacyRules: 99}, ModeNFT},
		{"only nft", modeFacts{NFT: true, LegacyRules: 10}, ModeNFT},
		{"only legacy", modeFacts{Legacy: true}, ModeLegacy},
		{"only plain iptables", modeFacts{Plain: true}, ModePlain},
	}
	for _, tt := range tests {
		got, err := chooseMode(tt.facts)
		if err != nil || got != tt.want {
			t.Errorf("%s: chooseMode = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := chooseMode(modeFacts{}); err == nil {
		t.Error("no binaries: want an error")
	}
}

// TestLegacyDecides: whenever DetectMode skips the nft tables, the mode is
// the one chooseMode picks from every nft fact it could have read.
func TestLegacyDecides(t *testing.T) {
	for _, legacyHint := range []bool{false, true} {
		for _, legacyRules := range []int{0, 1, 7} {
			f := modeFacts{NFT: true, Legacy: true, LegacyHint: legacyHint, LegacyRules: legacyRules}
			if !legacyDecides(f) {
				continue
			}
			skipped, err := chooseMode(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, nftHint := range []bool{false, true} {
				for _, nftRules := range []int{0, 1, 7, 5000} {
					g := f
					g.NFTHint, g.NFTRules = nftHint, nftRules
					if full, err := chooseMode(g); err != nil || full != skipped {
						t.Errorf("%+v: chooseMode = %q, %v; without the nft facts %q", g, full, err, skipped)
					}
				}
			}
		}
	}
	if legacyDecides(modeFacts{NFT: true, Legacy: true, LegacyRules: 1}) {
		t.Error("a legacy rule: the nft rules must be counted")
	}
	if legacyDecides(modeFacts{NFT: true, Legacy: true, LegacyHint: true}) {
		t.Error("a legacy hint: the nft hint must be looked for")
	}
}

func TestModeBinary(t *testing.T) {
	tests := []struct {
		m    Mode
		fam  Family
		tool string
		want string
	}{
		{ModeNFT, IPv4, "-restore", "iptables-nft-restore"},
		{ModeNFT, IPv6, "-save", "ip6tables-nft-save"},
		{ModeLegacy, IPv4, "", "iptables-legacy"},
		{ModeLegacy, IPv6, "-restore", "ip6tables-legacy-restore"},
		{ModePlain, IPv6, "-restore", "ip6tables-restore"},
	}
	for _, tt := range tests {
		if got := tt.m.binary(tt.fam, tt.tool); got != tt.want {
			t.Errorf("%s.binary(%s, %q) = %s, want %s", tt.m, tt.fam, tt.tool, got, tt.want)
		}
	}
}

func TestNewRunner(t *testing.T) {
	for _, m := range []Mode{"", ModeAuto, ModeNFT, ModeLegacy, ModePlain} {
		if _, err := NewRunner(m); err != nil {
			t.Errorf("NewRunner(%q): %v", m, err)
		}
	}
	if _, err := NewRunner("foo"); err == nil {
		t.Error(`NewRunner("foo"): want an error`)
	}
}
