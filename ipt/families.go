package ipt

import (
	"context"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
)

// forFamilies runs apply for each of fams and returns its errors, in the
// order of fams. The families run side by side when that is safe and can
// gain, one after the other otherwise:
//
//   - side by side only with the nft backend: iptables-nft-restore takes no
//     lock (it ignores -w) and commits one nftables transaction, which the
//     kernel serializes against the other family's (a commit that finds the
//     ruleset generation moved since it read its cache is refused and
//     retried by iptables-nft on a fresh cache); the two families share no
//     chain, no table and no set, so neither transaction depends on the
//     other. Their ipset dumps, swaps and destroys still run one at a time
//     (Runner.ipsetMu, ipsetExclusive): `ipset save` dumps the other
//     family's sets too, and the kernel refuses to swap or destroy a set
//     while it is dumped; restores that only create sets and add or delete
//     members run side by side. iptables-legacy takes the
//     xtables lock (/run/xtables.lock, one for both families) for the whole
//     restore: running them together would only make one wait. The
//     unsuffixed binaries (ModePlain) may be either, so they are treated as
//     legacy;
//   - a family other than the first runs on a goroutine locked to a thread
//     that is in the caller's network namespace, checked before it starts
//     anything (a caller may have locked its thread into another namespace:
//     every command and netlink request must start there); when it is not,
//     the family runs on the caller's goroutine after the first.
//
// Each family's apply is independent: whether run side by side or not,
// one that fails does not stop the other, and every failure is returned.
func (r *Runner) forFamilies(ctx context.Context, fams []Family, apply func(Family) error) []error {
	errs := make([]error, len(fams))
	if len(fams) < 2 || !r.familiesAtOnce(ctx) {
		for i, f := range fams {
			errs[i] = apply(f)
		}
		return errs
	}
	caller, err := netns.Get()
	if err != nil {
		for i, f := range fams {
			errs[i] = apply(f)
		}
		return errs
	}
	defer caller.Close()
	elsewhere := make([]bool, len(fams))
	var wg sync.WaitGroup
	for i := 1; i < len(fams); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if !inNetns(caller) {
				elsewhere[i] = true
				return
			}
			errs[i] = apply(fams[i])
		}()
	}
	errs[0] = apply(fams[0])
	wg.Wait()
	for i, f := range fams {
		if elsewhere[i] {
			errs[i] = apply(f)
		}
	}
	return errs
}

// familiesAtOnce reports whether the backend lets the families' restores
// run side by side (see forFamilies): only the nft backend does.
func (r *Runner) familiesAtOnce(ctx context.Context) bool {
	m, err := r.backend(ctx)
	return err == nil && m == ModeNFT
}

// inNetns reports whether the calling thread is in network namespace ns.
func inNetns(ns netns.NsHandle) bool {
	here, err := netns.Get()
	if err != nil {
		return false
	}
	defer here.Close()
	return here.Equal(ns)
}
