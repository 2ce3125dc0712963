package ipt

import (
	"context"
	"fmt"
	"strings"
)

// AddEntries adds entries to their sets in one process; entries already
// present are fine. Every set must exist.
// Equivalent to: `ipset -exist restore` of `add SET VALUE` lines.
func (r *Runner) AddEntries(ctx context.Context, entries []Entry) error {
	text, err := renderEntries("add", entries, nil)
	if err != nil {
		return fmt.Errorf("add entries: %w", err)
	}
	if err := r.ipsetRestore(ctx, text); err != nil {
		return fmt.Errorf("add entries: %w", err)
	}
	return nil
}

// DelEntries removes entries from their sets; entries or sets that do not
// exist are fine, because CNI DEL must be idempotent. It costs two processes:
// `ipset list -n`, then `ipset -exist restore` of `del SET VALUE` lines for
// the sets that exist.
func (r *Runner) DelEntries(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	names, err := r.listSetNames(ctx)
	if err != nil {
		return fmt.Errorf("del entries: %w", err)
	}
	text, err := renderEntries("del", entries, names)
	if err != nil {
		return fmt.Errorf("del entries: %w", err)
	}
	if err := r.ipsetRestore(ctx, text); err != nil {
		return fmt.Errorf("del entries: %w", err)
	}
	return nil
}

// renderEntries returns one `VERB SET VALUE` line per entry; when only is not
// nil, entries of sets not in it are left out. Set names must be ours.
func renderEntries(verb string, entries []Entry, only map[string]bool) ([]byte, error) {
	var b strings.Builder
	for _, e := range entries {
		if err := checkOwnedName(e.Set, MaxSetName); err != nil {
			return nil, err
		}
		if err := checkToken("entry of "+e.Set, e.Value); err != nil {
			return nil, err
		}
		if only != nil && !only[e.Set] {
			continue
		}
		b.WriteString(verb + " " + e.Set + " " + e.Value + "\n")
	}
	return []byte(b.String()), nil
}

// ListEntries returns every member of every set of ours, with values as
// ipset prints them (shortest address form, "10.0.0.1,tcp:80"; the nomatch
// flag is dropped). Equivalent to: `ipset save`.
func (r *Runner) ListEntries(ctx context.Context) (map[Entry]bool, error) {
	out, err := r.run(ctx, nil, "ipset", "save")
	if err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	entries := make(map[Entry]bool)
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "add" && Owned(f[1]) {
			entries[Entry{Set: f[1], Value: f[2]}] = true
		}
	}
	return entries, nil
}
