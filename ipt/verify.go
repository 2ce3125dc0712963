package ipt

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Holds reads the kernel back and describes, one line each, everything that
// keeps it from holding exactly rulesets (at most one per family): what
// Diff reports for each of them, and every chain of ours (Owned) in the
// filter table of their families, and every set of ours of their families
// (temporaries included), that they do not name. No lines means an Apply of
// rulesets would change nothing; the Runner then remembers rulesets as
// applied, so that its next Apply rewrites only what differs from them.
//
// It costs one `iptables-save -t filter` per family and one dump of the
// sets (over netlink, see readAllSets), whatever the number of rulesets: what a skipped Apply must still pay to
// be sure that the kernel holds the rules, rather than trusting a record
// of what was applied.
func (r *Runner) Holds(ctx context.Context, rulesets []Ruleset) ([]string, error) {
	diffs, _, err := r.HoldsProven(ctx, rulesets, "")
	return diffs, err
}

// HoldsProven is Holds, given the proof (see proof.go) that an earlier
// HoldsProven returned, or "". When proof is the key of the kernel now
// (same boot, network namespace and nftables generation, rulesets with the
// same hooks and chains, every wanted set with the same references), the
// rules are known to be exactly as that read-back found them, and only the
// sets are read. Otherwise it reads everything, as Holds. It returns the
// proof of the rules in force: proof itself when it held; a new one when
// the kernel, read back, held exactly rulesets (with no transaction
// committed during the read); "" when it cannot make one (not the nft
// backend, another network namespace, a difference).
func (r *Runner) HoldsProven(ctx context.Context, rulesets []Ruleset, proof string) (diffs []string, next string, err error) {
	// The rulesets' fingerprint (tens of milliseconds at 10,000 pods) is
	// taken beside the plan and the set dump, which must stay on the
	// calling thread (its network namespace).
	printed := make(chan prints, 1)
	go func() { printed <- fingerprint(rulesets) }()
	now := sync.OnceValue(func() prints { return <-printed })
	p, err := newPlan(rulesets)
	if err != nil {
		return nil, "", fmt.Errorf("read back: %w", err)
	}
	mode, err := r.backend(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("read back: %w", err)
	}
	st, provable := r.proofStamp(mode)
	if provable && proof != "" {
		if saved, ok := netlinkAllSets(); ok {
			if key, ok := proofKey(st, now(), p, saved); ok && key == proof {
				diffs, differ := setDiffsBySet(p, saved)
				r.rememberProven(diffs, differ, now(), p, saved)
				return diffs, proof, nil
			}
		}
	}
	diffs, err = r.ruleDiffs(ctx, p)
	if err != nil {
		return nil, "", err
	}
	saved, err := r.readAllSets(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("read back sets: %w", err)
	}
	diffs = append(diffs, setDiffs(p, saved)...)
	r.remember(diffs, now())
	if provable && len(diffs) == 0 {
		if after, ok := r.proofStamp(mode); ok && after == st {
			next, _ = proofKey(st, now(), p, saved)
		}
	}
	return diffs, next, nil
}

// remember makes the Runner's memory rulesets' prints when the kernel
// holds them (no diffs).
func (r *Runner) remember(diffs []string, now prints) {
	if len(diffs) > 0 {
		return
	}
	r.mu.Lock()
	r.memory = memory{valid: true, prints: now}
	r.mu.Unlock()
}

// rememberProven is remember for rules proven unchanged: when the sets
// differ from p's only in members (every set of p exists with its type,
// and no other set of ours does), the Runner remembers the rules and the
// sets that matched as applied, so that its next Apply changes only the
// members of the others, with no read-back of the rules. differ names the
// sets of p that differ (setDiffsBySet).
func (r *Runner) rememberProven(diffs []string, differ map[string]bool, now prints, p *plan, saved map[string]*savedSet) {
	if len(diffs) == 0 {
		r.remember(nil, now)
		return
	}
	for name, s := range saved {
		if Owned(name) && !p.wanted[name] && p.byFamily[s.Family] != nil {
			return
		}
	}
	sets := make(map[string][32]byte, len(now.sets))
	for _, s := range p.sets {
		have := saved[s.Name]
		if have == nil || have.Type != s.Type || have.Family != s.Family {
			return
		}
		if !differ[s.Name] {
			sets[s.Name] = now.sets[s.Name]
		}
	}
	known := now
	known.sets = sets
	r.mu.Lock()
	r.memory = memory{valid: true, prints: known}
	r.mu.Unlock()
}

// ruleDiffs reads the filter table of each family of p back (one
// `iptables-save -t filter` each) and describes how it differs from p's
// hooks and chains, and each chain of ours that p lacks.
func (r *Runner) ruleDiffs(ctx context.Context, p *plan) ([]string, error) {
	var diffs []string
	for _, fam := range Families {
		rs := p.byFamily[fam]
		if rs == nil {
			continue
		}
		t, err := r.saveFilter(ctx, fam)
		if err != nil {
			return nil, fmt.Errorf("read back %s: %w", fam, err)
		}
		diffs = append(diffs, diffHooks(renderHooks(rs.Hooks), t)...)
		for _, c := range rs.Chains {
			diffs = append(diffs, diffChain(c, t)...)
		}
		want := make(map[string]bool, len(rs.Chains))
		for _, c := range rs.Chains {
			want[c.Name] = true
		}
		for _, name := range t.ownedChains() {
			if !want[name] {
				diffs = append(diffs, fmt.Sprintf("chain %s not wanted", name))
			}
		}
	}
	return diffs, nil
}

// setDiffs describes how the sets read back (saved) differ from p's, and
// each set of ours of p's families that p lacks.
func setDiffs(p *plan, saved map[string]*savedSet) []string {
	diffs, _ := setDiffsBySet(p, saved)
	return diffs
}

// setDiffsBySet is setDiffs, with the names of p's sets that differ.
func setDiffsBySet(p *plan, saved map[string]*savedSet) ([]string, map[string]bool) {
	var diffs []string
	differ := map[string]bool{}
	for _, s := range p.sets {
		d := diffSet(s, s.Family, saved[s.Name])
		if len(d) > 0 {
			differ[s.Name] = true
			diffs = append(diffs, d...)
		}
	}
	var extra []string
	for name, s := range saved {
		if Owned(name) && !p.wanted[name] && p.byFamily[s.Family] != nil {
			extra = append(extra, fmt.Sprintf("set %s not wanted", name))
		}
	}
	sort.Strings(extra)
	return append(diffs, extra...), differ
}

// diffHooks describes each hook (rendered) missing from the saved table
// t, or not at its position.
func diffHooks(hooks []RenderedHook, t *savedTable) []string {
	var diffs []string
	for _, h := range hooks {
		have := t.Rules[string(h.Chain)]
		switch at := slices.Index(have, h.Rule); {
		case at < 0:
			diffs = append(diffs, fmt.Sprintf("hook missing from %s: %s", h.Chain, h.Rule))
		case at != hookIndex(Hook{Position: h.Position}, len(have)-1):
			diffs = append(diffs, fmt.Sprintf("hook not at position %d of %s (at %d): %s", h.Position, h.Chain, at+1, h.Rule))
		}
	}
	return diffs
}

// readAllSets returns every set of the kernel with its members in
// memberKey form (`ipset save`, parsed). In the process's own network
// namespace (NetNS empty) one netlink dump reads them, from the calling
// thread; otherwise, or when the dump fails or holds an entry of ours it
// cannot render, one `ipset save` does.
func (r *Runner) readAllSets(ctx context.Context) (map[string]*savedSet, error) {
	if r.NetNS == "" {
		if sets, ok := netlinkAllSets(); ok {
			return sets, nil
		}
	}
	out, err := r.run(ctx, nil, "ipset", "save")
	if err != nil {
		return nil, err
	}
	return parseIPSetSave(string(out)), nil
}

// netlinkAllSets dumps every set over the ipset netlink interface
// (`ipset list`): the type and family of each, and the members of ours
// (Owned) in memberKey form; another tool's sets are listed without their
// members. False when the kernel refused or an entry of ours cannot be
// rendered.
func netlinkAllSets() (map[string]*savedSet, bool) {
	req := nl.NewNetlinkRequest(nl.IPSET_CMD_LIST|unix.NFNL_SUBSYS_IPSET<<8, nl.GetIpsetFlags(nl.IPSET_CMD_LIST))
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_NETLINK, Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	msgs, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return nil, false
	}
	families := map[byte]Family{unix.NFPROTO_IPV4: IPv4, unix.NFPROTO_IPV6: IPv6}
	sets := make(map[string]*savedSet)
	for _, msg := range msgs {
		if len(msg) < 4 {
			return nil, false
		}
		var name, typ string
		var fam Family
		var adt, head []byte
		eachAttr(msg[4:], func(t uint16, v []byte) {
			switch t {
			case nl.IPSET_ATTR_DATA:
				head = v
			case nl.IPSET_ATTR_SETNAME:
				name = strings.TrimRight(string(v), "\x00")
			case nl.IPSET_ATTR_TYPENAME:
				typ = strings.TrimRight(string(v), "\x00")
			case nl.IPSET_ATTR_FAMILY:
				if len(v) == 1 {
					fam = families[v[0]]
				}
			case nl.IPSET_ATTR_ADT:
				adt = v
			}
		})
		s := sets[name]
		if s == nil {
			if name == "" || typ == "" {
				return nil, false
			}
			s = &savedSet{SetInfo: SetInfo{Type: SetType(typ), Family: fam}, Members: make(map[string]bool)}
			sets[name] = s
		}
		eachAttr(head, func(t uint16, v []byte) {
			if t == nl.IPSET_ATTR_REFERENCES && len(v) == 4 {
				s.Refs, s.RefsKnown = binary.BigEndian.Uint32(v), true
			}
		})
		if adt == nil || !Owned(name) {
			continue
		}
		ok := true
		eachAttr(adt, func(t uint16, entry []byte) {
			key, valid := entryKey(s.Type, entry)
			ok = ok && t == nl.IPSET_ATTR_DATA && valid
			s.Members[key] = true
		})
		if !ok {
			return nil, false
		}
	}
	return sets, true
}
