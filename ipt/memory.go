package ipt

import (
	"crypto/sha256"
	"sort"
	"strings"
)

// memory is what a Runner last applied successfully: a fingerprint of every
// set (type, family, members) and of every chain (its rendered rules), per
// family. With it, a sync rewrites only the sets and chains that changed
// since: a pod label or one policy changes a few sets and chains, not the
// whole node's. Memory is per process; a new Runner (a fresh agent, `--once`)
// applies everything. After any failed Apply, and when the caller saw the
// kernel drift (Forget), the next Apply is whole again.
type memory struct {
	sets   map[string][32]byte
	chains map[Family]map[string][32]byte
}

func setFingerprint(s Set) [32]byte {
	members := make([]string, len(s.Members))
	for i, m := range s.Members {
		members[i] = memberKey(s.Type, m.Entry, m.NoMatch)
	}
	sort.Strings(members)
	return sha256.Sum256([]byte(string(s.Type) + "\x00" + s.Family.SetFamily() + "\x00" + strings.Join(members, "\x00")))
}

func chainFingerprint(c Chain) [32]byte {
	h := sha256.New()
	for _, r := range c.Rules {
		h.Write([]byte(RenderRule(c.Name, r)))
		h.Write([]byte{'\n'})
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// changedSets returns the sets of desired that memory does not hold as they
// are, or that are missing from the kernel (existing).
func (m *memory) changedSets(desired []Set, existing map[string]SetInfo) []Set {
	var out []Set
	for _, s := range desired {
		_, present := existing[s.Name]
		if prev, ok := m.sets[s.Name]; !present || !ok || prev != setFingerprint(s) {
			out = append(out, s)
		}
	}
	return out
}

// changedChains returns the chains of rs that memory does not hold as they
// are.
func (m *memory) changedChains(rs *Ruleset) []Chain {
	var out []Chain
	known := m.chains[rs.Family]
	for _, c := range rs.Chains {
		if prev, ok := known[c.Name]; !ok || prev != chainFingerprint(c) {
			out = append(out, c)
		}
	}
	return out
}

// remember records a successful Apply of rulesets.
func (m *memory) remember(rulesets []Ruleset) {
	m.sets = map[string][32]byte{}
	m.chains = map[Family]map[string][32]byte{}
	for _, rs := range rulesets {
		chains := map[string][32]byte{}
		for _, c := range rs.Chains {
			chains[c.Name] = chainFingerprint(c)
		}
		m.chains[rs.Family] = chains
		for _, s := range rs.Sets {
			s.Family = rs.Family
			m.sets[s.Name] = setFingerprint(s)
		}
	}
}

// Forget makes the next Apply rewrite every set and chain, whatever was
// applied before: for a caller that found the kernel changed behind its back.
func (r *Runner) Forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.memory = memory{}
}
