package ipt

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkMemberChange measures what Apply's two ways of changing n
// members of an existing 1,000-member set cost, from inside the namespace
// (the agent's case), interleaved round by round: over netlink (add the n
// members, then delete them: one request each, up to 64 written at once,
// as memberDiff's path does) and as Apply's restores (ipsetRestore: one
// input adding them, one deleting them; in the process's own namespace
// these go over netlink too, a set's members batched into messages). The
// restore side is its floor: Apply's shrink restore also refills the
// whole set into a temporary. It logs min/median/max per
// change (add and delete) of each, in ms.
func BenchmarkMemberChange(b *testing.B) {
	var fill strings.Builder
	fill.WriteString("create NETPOL4-BENCH hash:ip family inet maxelem 65536\n")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&fill, "add NETPOL4-BENCH 10.1.%d.%d\n", i>>8, i&255)
	}
	for _, n := range []int{1, 16, 64, 256, 1024} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			ns := newTestNS(b)
			ns.mustIn(fill.String(), "ipset", "restore")
			enterNS(b, ns) // this goroutine's: each sub-benchmark has its own
			r, ctx := &Runner{Mode: ModeNFT, Timeout: time.Minute}, context.Background()
			entries := make([]Entry, n)
			var add, del strings.Builder
			for i := range entries {
				entries[i] = Entry{Set: "NETPOL4-BENCH", Value: fmt.Sprintf("10.2.%d.%d", i>>8, i&255)}
				add.WriteString("add NETPOL4-BENCH " + entries[i].Value + "\n")
				del.WriteString("del NETPOL4-BENCH " + entries[i].Value + "\n")
			}
			var viaNetlink, viaRestore []time.Duration
			for b.Loop() {
				for range 11 {
					start := time.Now()
					if !netlinkEntries(ctx, true, entries) || !netlinkEntries(ctx, false, entries) {
						b.Fatal("netlink add or del failed")
					}
					viaNetlink = append(viaNetlink, time.Since(start))
					start = time.Now()
					if err := r.ipsetRestore(ctx, []byte(add.String())); err != nil {
						b.Fatal(err)
					}
					if err := r.ipsetRestore(ctx, []byte(del.String())); err != nil {
						b.Fatal(err)
					}
					viaRestore = append(viaRestore, time.Since(start))
				}
			}
			b.Logf("%d members added and deleted, ms min/median/max: netlink %s, restore %s",
				n, spread(viaNetlink), spread(viaRestore))
		})
	}
}

// spread is "min/median/max" of ds in ms.
func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return fmt.Sprintf("%.2f/%.2f/%.2f", ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)-1]))
}
