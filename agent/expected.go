package agent

import (
	"sync"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// expecter keeps expected.json, what CNI CHECK compares with the kernel
// (policy.Expect, state.WriteExpected), in step with the commits: after
// each one it is written for the committed index, a little later, beside
// the run loop like the snapshot (every commit's, not rate-limited), and
// outside the data directory lock. Its body, the rules rendered (tens of
// milliseconds for a thousand policies), is made again only when the
// committed chains are not the ones it was made of; a commit that changed
// only set members (a pod's labels, a pod added) rewrites the first line
// only, which names the new index. CHECK refuses a file that names another
// index than the one it reads.
type expecter struct {
	writer behindWriter[policy.Compiled]
	mu     sync.Mutex    // held by save
	rules  []ipt.Ruleset // what body was made of
	body   []byte
	stored string // the index the file names, "" when unknown
}

// writeExpected hands the committed c to expected.json's writer (written
// at once when the agent does not write behind).
func (a *Agent) writeExpected(c *policy.Compiled) {
	if a.WriteBehind {
		a.ex.writer.write(c, 0, a.saveExpected)
		return
	}
	a.saveExpected(c)
}

// saveExpected writes expected.json for c unless it holds it already. A
// failed write is logged and written again after the next commit; until
// then CHECK fails on the file (it names another index), it does not pass.
func (a *Agent) saveExpected(c *policy.Compiled) {
	a.ex.mu.Lock()
	defer a.ex.mu.Unlock()
	if a.ex.body == nil || !sameChains(a.ex.rules, c.Rulesets) {
		body, err := state.EncodeExpectedFamilies(policy.Expect(c))
		if err != nil {
			a.Log.Warn("encode the rules CHECK compares; the next commit tries again", "err", err)
			return
		}
		a.ex.body, a.ex.rules, a.ex.stored = body, c.Rulesets, ""
	}
	sum := state.IndexSum(state.EncodeIndex(&c.Index))
	if sum == a.ex.stored && a.Store.ExpectedNames(sum) {
		return // another process (a --once run) may have written it since
	}
	if err := a.Store.WriteExpected(sum, a.ex.body); err != nil {
		a.Log.Warn("store the rules CHECK compares; the next commit writes them again", "err", err)
		a.ex.stored = ""
		return
	}
	a.ex.stored = sum
}

// sameChains reports whether b's hooks and chains are a's, the same
// slices: a patch that leaves the rules alone keeps them (policy.Patch),
// and nothing changes a committed ruleset in place.
func sameChains(a, b []ipt.Ruleset) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Family != b[i].Family || len(a[i].Chains) != len(b[i].Chains) || len(a[i].Hooks) != len(b[i].Hooks) ||
			len(a[i].Chains) > 0 && &a[i].Chains[0] != &b[i].Chains[0] ||
			len(a[i].Hooks) > 0 && &a[i].Hooks[0] != &b[i].Hooks[0] {
			return false
		}
	}
	return true
}
