package ipt

import (
	"crypto/sha256"
	"maps"
	"slices"
	"strconv"
)

// memory is what a Runner last applied successfully: a fingerprint of every
// set (type, family, members) and of every chain (its rendered rules) and
// hook list, per family. With it, a sync rewrites only the sets and chains
// that changed since: a pod label or one policy changes a few sets and
// chains, not the whole node's. Memory is per process; a new Runner (a fresh
// agent, `--once`) reads the kernel back and applies every set and chain it
// does not hold exactly. After any failed Apply, and when the caller saw the
// kernel drift (Forget), the next Apply does so again.
//
// While memory is valid, Apply also trusts it for what exists: it lists no
// sets and no chains (the stale chains are those it installed and no longer
// wants) and reads a built-in chain back only to place changed hooks or
// unhook stale chains, so a sync that changes one policy runs just the
// restores it needs.
type memory struct {
	valid bool
	prints
}

// prints are the fingerprints of a desired state, computed once per Apply.
type prints struct {
	sets    map[string][32]byte
	setInfo map[string]SetInfo
	chains  map[Family]map[string][32]byte
	hooks   map[Family][32]byte
}

// fingerprint computes the prints of rulesets. Set members are hashed as the
// compiler gives them (sorted, unnormalized): memory is only ever compared
// with what this process itself applied.
func fingerprint(rulesets []Ruleset) prints {
	p := prints{sets: map[string][32]byte{}, setInfo: map[string]SetInfo{},
		chains: map[Family]map[string][32]byte{}, hooks: map[Family][32]byte{}}
	for _, rs := range rulesets {
		h := sha256.New()
		for _, k := range rs.Hooks {
			h.Write([]byte(string(k.Chain) + "\x00" + strconv.Itoa(k.Position) + "\x00" + RenderRule(string(k.Chain), k.Rule) + "\n"))
		}
		p.hooks[rs.Family] = sum(h.Sum(nil))
		chains := make(map[string][32]byte, len(rs.Chains))
		for _, c := range rs.Chains {
			chains[c.Name] = chainPrint(c)
		}
		p.chains[rs.Family] = chains
		for _, s := range rs.Sets {
			p.sets[s.Name] = setPrint(s, rs.Family)
			p.setInfo[s.Name] = SetInfo{Type: s.Type, Family: rs.Family}
		}
	}
	return p
}

// chainPrint is the fingerprint of a chain: its rendered rules.
func chainPrint(c Chain) [32]byte {
	h := sha256.New()
	for _, r := range c.Rules {
		h.Write([]byte(RenderRule(c.Name, r)))
		h.Write([]byte{'\n'})
	}
	return sum(h.Sum(nil))
}

// setPrint is the fingerprint of set s of family f: type, family, members.
func setPrint(s Set, f Family) [32]byte {
	h := sha256.New()
	h.Write([]byte(string(s.Type) + "\x00" + f.SetFamily() + "\x00"))
	for _, m := range s.Members {
		h.Write([]byte(m.Entry))
		if m.NoMatch {
			h.Write([]byte(" nomatch"))
		}
		h.Write([]byte{0})
	}
	return sum(h.Sum(nil))
}

func sum(b []byte) (out [32]byte) {
	copy(out[:], b)
	return out
}

// changedSets returns the sets of desired whose prints memory does not hold,
// or that are missing from the kernel (existing).
func (m *memory) changedSets(desired []Set, now prints, existing map[string]SetInfo) []Set {
	var out []Set
	for _, s := range desired {
		_, present := existing[s.Name]
		if prev, ok := m.sets[s.Name]; !present || !ok || prev != now.sets[s.Name] {
			out = append(out, s)
		}
	}
	return out
}

// changedChains returns the chains of rs whose prints memory does not hold.
func (m *memory) changedChains(rs *Ruleset, now prints) []Chain {
	var out []Chain
	known, fresh := m.chains[rs.Family], now.chains[rs.Family]
	for _, c := range rs.Chains {
		if prev, ok := known[c.Name]; !ok || prev != fresh[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

// chainNames returns, sorted, the chains of family f that the last Apply
// installed, and whether memory knows them (it is valid and that Apply had
// a ruleset of f).
func (m *memory) chainNames(f Family) ([]string, bool) {
	chains, ok := m.chains[f]
	if !m.valid || !ok {
		return nil, false
	}
	return slices.Sorted(maps.Keys(chains)), true
}

// hooksInPlace reports whether the hooks of family f are those the last
// Apply installed (and so, trusting memory, still in place).
func (m *memory) hooksInPlace(f Family, now prints) bool {
	prev, ok := m.hooks[f]
	return m.valid && ok && prev == now.hooks[f]
}

// existing returns the sets memory knows to exist.
func (m *memory) existing() map[string]SetInfo { return maps.Clone(m.setInfo) }

// Forget makes the next Apply rewrite every set and chain, whatever was
// applied before: for a caller that found the kernel changed behind its back.
func (r *Runner) Forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.memory = memory{}
}
