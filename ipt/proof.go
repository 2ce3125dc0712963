package ipt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// A rules proof lets a later read-back (HoldsProven) skip reading the
// rules (`iptables-save`, the costliest part of it at thousands of rules)
// when nothing can have changed them since an earlier read-back found them
// exactly as wanted. It is a text key of:
//
//   - the boot (/proc/sys/kernel/random/boot_id): a reboot empties every
//     table;
//   - the network namespace (its cookie, getsockopt SO_NETNS_COOKIE: unique
//     per namespace for the whole boot, never reused);
//   - the nftables ruleset generation of that namespace (NFT_MSG_GETGEN):
//     the kernel increments it on every committed nf_tables transaction,
//     and iptables-nft changes rules only through such transactions (one
//     iptables-restore, one iptables -A, -D, -F, -X: each one commit), so an
//     equal generation means no rule of any table of either family changed;
//   - a fingerprint of the wanted hooks and chains;
//   - the reference count of every wanted set (`ipset list`'s
//     "References"): the rules name their sets by index, and an `ipset
//     rename` (which no generation sees) would make a rule match a set of
//     another name; the rename moves the references with it.
//
// Only the nft backend has a generation, and only a Runner in its own
// network namespace (NetNS empty) reads it there: otherwise no proof is
// made or accepted. The sets are not nftables objects and are always read.

// stamp is where and when the rules were read: boot, namespace, generation.
type stamp struct {
	boot  string
	netns uint64
	gen   uint32
}

// proofStamp reads the stamp of the calling thread's network namespace;
// false when the Runner cannot prove (not nft, another namespace) or a part
// cannot be read.
func (r *Runner) proofStamp(mode Mode) (stamp, bool) {
	if r.NetNS != "" || mode != ModeNFT {
		return stamp{}, false
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil || len(strings.TrimSpace(string(boot))) == 0 {
		return stamp{}, false
	}
	cookie, err := netnsCookie()
	if err != nil {
		return stamp{}, false
	}
	gen, err := NFTGeneration()
	if err != nil {
		return stamp{}, false
	}
	return stamp{boot: strings.TrimSpace(string(boot)), netns: cookie, gen: gen}, true
}

// proofKey is the proof of the rules of now (fingerprint of the wanted
// rulesets) read at st, with the sets' references as read in saved.
func proofKey(st stamp, now prints, p *plan, saved map[string]*savedSet) (string, bool) {
	h := sha256.New()
	for _, fam := range Families {
		if p.byFamily[fam] == nil {
			continue
		}
		hooks := now.hooks[fam]
		fmt.Fprintf(h, "family %s hooks %x\n", fam, hooks[:])
		chains := now.chains[fam]
		for _, name := range slices.Sorted(maps.Keys(chains)) {
			c := chains[name]
			fmt.Fprintf(h, "chain %s %x\n", name, c[:])
		}
	}
	for _, s := range p.sets {
		ss := saved[s.Name]
		if ss == nil || !ss.RefsKnown {
			return "", false
		}
		fmt.Fprintf(h, "set %s references %d\n", s.Name, ss.Refs)
	}
	return fmt.Sprintf("netpol-rules-proof v1 boot=%s netns=%d gen=%d rules=%s", st.boot, st.netns, st.gen,
		hex.EncodeToString(h.Sum(nil))), true
}

// netnsCookie returns the cookie of the calling thread's network namespace.
// Equivalent to: getsockopt(SO_NETNS_COOKIE) on any socket of it.
func netnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: %w", err)
	}
	defer unix.Close(fd)
	v, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: %w", err)
	}
	return v, nil
}

// NFTGeneration is the nftables ruleset generation of the calling thread's
// network namespace: every committed transaction (one iptables-restore, one
// iptables -A, of any family) increments it. It fails where nftables is
// unavailable. Equivalent to: the "# new generation N" lines of `nft
// monitor`.
func NFTGeneration() (uint32, error) {
	const msgGetGen = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN
	req := nl.NewNetlinkRequest(msgGetGen, unix.NLM_F_ACK)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_UNSPEC, Version: nl.NFNETLINK_V0})
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return 0, fmt.Errorf("nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofNfgenmsg {
			continue
		}
		var gen []byte
		eachAttr(m[nl.SizeofNfgenmsg:], func(t uint16, v []byte) {
			if t == unix.NFTA_GEN_ID && len(v) == 4 {
				gen = v
			}
		})
		if gen != nil {
			return binary.BigEndian.Uint32(gen), nil
		}
	}
	return 0, fmt.Errorf("nftables generation: no NFTA_GEN_ID in %d messages", len(msgs))
}

// proving is the stamp and restore count at the start of an Apply that
// reads the kernel back (a Runner with no memory).
type proving struct {
	mode     Mode
	st       stamp
	restores uint32
	ok       bool
}

// startProof notes the stamp before an Apply reads the rules back.
func (r *Runner) startProof(ctx context.Context) proving {
	mode, err := r.backend(ctx)
	if err != nil {
		return proving{}
	}
	st, ok := r.proofStamp(mode)
	r.mu.Lock()
	defer r.mu.Unlock()
	return proving{mode: mode, st: st, restores: r.restores, ok: ok}
}

// finishProof makes the proof of a successful Apply that read the rules
// back (with no memory): when the generation moved by exactly the
// transactions it ran, nothing else changed the rules between its
// read-back and its end, so they are the read-back's rules rewritten where
// they differed: exactly the wanted ones (what Holds would have verified).
func (r *Runner) finishProof(pr proving, now prints, p *plan) {
	if !pr.ok {
		return
	}
	st, ok := r.proofStamp(pr.mode)
	r.mu.Lock()
	ran := r.restores - pr.restores
	r.mu.Unlock()
	if !ok || st.boot != pr.st.boot || st.netns != pr.st.netns || st.gen != pr.st.gen+ran {
		return
	}
	saved, ok := netlinkAllSets()
	if !ok {
		return
	}
	if key, ok := proofKey(st, now, p, saved); ok {
		r.mu.Lock()
		r.applied = key
		r.mu.Unlock()
	}
}

// AppliedProof returns the rules proof of the last Apply and forgets it
// (a second call returns ""); "" when it made none: it read nothing back,
// something else changed the rules meanwhile, or the Runner cannot prove
// (see HoldsProven).
func (r *Runner) AppliedProof() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	proof := r.applied
	r.applied = ""
	return proof
}
