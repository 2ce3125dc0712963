package agent

import (
	"context"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
)

// Drift compares the kernel with what snap (the snapshot last synced, held
// by the run loop: no need to decode snapshot.json again) and the pod
// records call for, and returns the differences (empty when the kernel is
// as desired). It takes no lock: ADD and DEL go on while it compiles (or
// reuses the last committed state) and reads the kernel back. A record
// added or removed meanwhile can make a difference that is none; so when
// the records changed during the read-back it reports nothing, and the
// next check looks again.
func (a *Agent) Drift(ctx context.Context, snap *policy.Snapshot) ([]string, error) {
	d, err := a.prepareDrift(snap)
	if err != nil {
		return nil, err
	}
	return a.readKernel(ctx, d)
}

// driftCheck is a read-back prepared by the goroutine that syncs: the
// rulesets the kernel should hold and the records stamp they were made of.
type driftCheck struct {
	rulesets []ipt.Ruleset
	stamp    [32]byte
}

// prepareDrift is the part of Drift that uses the agent's sync state (the
// last commit, the families in use); only the goroutine that syncs calls
// it.
func (a *Agent) prepareDrift(snap *policy.Snapshot) (*driftCheck, error) {
	src := snap
	snap = a.withDropLog(a.nodeWide(snap))
	stamp, atts, err := a.records()
	if err != nil {
		return nil, err
	}
	var compiled *policy.Compiled
	if l := a.last; l != nil && l.src == src && sameAttachments(l.atts, atts) {
		compiled = l.compiled // what the last sync of src committed
	} else if compiled, err = a.compile(snap, atts); err != nil {
		return nil, err
	}
	d := &driftCheck{stamp: stamp}
	for _, rs := range compiled.Rulesets {
		if !a.ipv6Off || rs.Family != ipt.IPv6 {
			d.rulesets = append(d.rulesets, rs)
		}
	}
	return d, nil
}

// readKernel is the part of Drift that reads the kernel back. It touches
// only the Kernel's Diff and the records stamp, so it may run beside a
// sync (Run does so); a difference it reports may then be that sync's
// change, which the caller must tell apart (loop.finishRepair).
func (a *Agent) readKernel(ctx context.Context, d *driftCheck) ([]string, error) {
	var out []string
	for i := range d.rulesets {
		diff, err := a.Kernel.Diff(ctx, &d.rulesets[i])
		if err != nil {
			return nil, err
		}
		out = append(out, diff...)
	}
	if len(out) > 0 {
		if now, err := a.Store.RecordsStamp(); err != nil || now != d.stamp {
			return nil, err
		}
	}
	return out, nil
}

// BackgroundNice is the nice value of the agent's work that holds no lock
// and has no deadline: a drift check's read-back (Run; the thread that
// reads the kernel back and the iptables-save processes it starts) and the
// files written behind a sync (behindWriter: the snapshot, 10,000 pods
// encoded, realized.json, expected.json). At 10,000 pods a read-back keeps
// a core busy for most of a second and a snapshot write for a tenth of
// one; a CNI ADD that starts meanwhile (its process, the Go runtime)
// competes with them for the CPU, so they yield. Work under the data
// directory lock is never lowered, nor is a sync's compile: an ADD may be
// waiting for the one, a change for the other.
const BackgroundNice = 10

// lowerPriority gives the calling goroutine a thread of its own at
// BackgroundNice, for the rest of its life: the thread is locked to the
// goroutine and never unlocked, so it ends with it and its nice value is
// never used for anything else. Processes it starts inherit the value. A
// thread already nicer (the agent started with nice 15) is left as it is.
// Equivalent to: renice -n 10 -p TID.
func lowerPriority() {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// getpriority(2) returns 20 - nice, so that it is never negative.
	if prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil && 20-prio >= BackgroundNice {
		return
	}
	_ = unix.Setpriority(unix.PRIO_PROCESS, tid, BackgroundNice) // a best effort: raising nice needs no privilege
}
