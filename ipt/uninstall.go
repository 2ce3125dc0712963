package ipt

import (
	"context"
	"fmt"
	"sort"
)

// maxUninstallRounds bounds how often Uninstall re-reads a table in which our
// hooks or chains reappear (another process adding them concurrently).
const maxUninstallRounds = 5

// Uninstall removes everything of ours from the namespace and nothing else:
// per family, every rule of INPUT, FORWARD and OUTPUT that jumps or goes to a
// chain of ours, and every chain of ours (flushed and deleted in the same
// `iptables-restore --noflush` transaction), re-reading until none remain;
// then every set of ours, in one `ipset restore`. Running it again succeeds
// and does nothing.
func (r *Runner) Uninstall(ctx context.Context) error {
	for _, fam := range Families {
		if err := r.uninstallRules(ctx, fam); err != nil {
			return fmt.Errorf("uninstall %s: %w", fam, err)
		}
	}
	names, err := r.listSetNames(ctx)
	if err != nil {
		return fmt.Errorf("uninstall sets: %w", err)
	}
	var owned []string
	for n := range names {
		if Owned(n) {
			owned = append(owned, n)
		}
	}
	sort.Strings(owned)
	if err := r.ipsetRestore(ctx, renderDestroySets(owned)); err != nil {
		return fmt.Errorf("uninstall sets: %w", err)
	}
	return nil
}

// uninstallRules removes our hooks and chains of one family.
func (r *Runner) uninstallRules(ctx context.Context, fam Family) error {
	for range maxUninstallRounds {
		t, err := r.saveFilter(ctx, fam)
		if err != nil {
			return err
		}
		hooks, chains := t.ownedHooks(nil), t.ownedChains()
		if len(hooks) == 0 && len(chains) == 0 {
			return nil
		}
		deletes := make([]string, len(hooks))
		for i, h := range hooks {
			deletes[i] = asDelete(h)
		}
		if err := r.restore(ctx, fam, renderTransaction(&Ruleset{Family: fam}, chains, deletes)); err != nil {
			return err
		}
	}
	return fmt.Errorf("our hooks or chains are still there after %d rounds", maxUninstallRounds)
}
