package plugin

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
	"github.com/netpol/netpol/state/cluster"
)

// Check handles CNI CHECK: the pod's record, its set entries, our hook in
// FORWARD, the fixed and dispatch chains, and the chains of the pod's groups
// and policies must all be in the kernel, rule for rule. The error names the
// first missing pieces.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	return p.locked(args, "CHECK", true, func(inv *invocation) error { return inv.check(args) })
}

func (inv *invocation) check(args *skel.CmdArgs) error {
	att, err := inv.store.ReadAttachment(args.ContainerID, args.IfName)
	if q := (state.Quarantined{}); errors.As(err, &q) {
		logQuarantined(inv.log, q)
		return errorf(types.ErrInternal, "netpol: %v: the pod is unknown to netpol until it is added again", q)
	}
	if errors.Is(err, os.ErrNotExist) {
		return errorf(types.ErrInternal, "netpol: no record of container %s interface %s under %s: ADD did not run or DEL already did",
			args.ContainerID, args.IfName, inv.conf.DataDir)
	}
	if err != nil {
		return types.NewError(types.ErrIOFailure, "read pod record", err.Error())
	}
	problems, err := inv.missing(att)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("and %d more", len(problems)-10))
		}
		return errorf(types.ErrInternal, "netpol: pod %s: missing from the kernel: %s", att.PodKey(), strings.Join(problems, "; "))
	}
	return nil
}

// missing returns what attachment att needs that is missing from the
// kernel: the hook and the chains its pod relies on (policy.CompilePod, or
// the fixed chains of a node whose agent never synced) and its own set
// entries, from the index. Other pods' sets are not read.
func (inv *invocation) missing(att *policy.Attachment) ([]string, error) {
	idx, err := inv.readIndex(att.PodKey())
	if err != nil {
		return nil, err
	}
	var rulesets []ipt.Ruleset
	snap, err := cluster.ReadSnapshot(inv.store)
	switch {
	case errors.Is(err, os.ErrNotExist) || idx == nil:
		var skeleton *policy.Compiled
		if skeleton, err = policy.CompileUnknown(nil, dropLog(inv.conf)); err == nil {
			rulesets = skeleton.Rulesets
		}
	case err != nil:
		return nil, types.NewError(types.ErrIOFailure, "read snapshot", err.Error())
	default:
		rulesets, err = policy.CompilePod(snap, att.PodKey())
	}
	if err != nil {
		return nil, kernelError("compile the pod's chains", err)
	}
	var problems []string
	for _, rs := range rulesets {
		if !hasFamily(att, rs.Family) {
			continue
		}
		rules := rs
		rules.Sets = nil // set contents are checked for this pod only, below
		diff, err := inv.kernel.Diff(inv.ctx, &rules)
		if err != nil {
			return nil, kernelError("read back "+rs.Family.String(), err)
		}
		problems = append(problems, diff...)
	}
	present, err := inv.kernel.ListEntries(inv.ctx)
	if err != nil {
		return nil, kernelError("list sets", err)
	}
	for _, e := range idx.Entries(att) {
		if !present[e] {
			problems = append(problems, fmt.Sprintf("set %s has no entry %s", e.Set, e.Value))
		}
	}
	return problems, nil
}

func hasFamily(att *policy.Attachment, f ipt.Family) bool {
	for _, ip := range att.IPs {
		if fam, ok := policy.AddressFamily(ip); ok && fam == f {
			return true
		}
	}
	return false
}
