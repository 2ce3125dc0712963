package plugin

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/netpol/netpol/policy/node"
	"github.com/netpol/netpol/state"
)

// Check handles CNI CHECK: the pod's record, its set entries, our hook in
// FORWARD, the fixed and dispatch chains, and the chains of the pod's groups
// and policies must all be in the kernel, rule for rule, as the agent's
// last commit left them (expected.json; see missing). The error names the
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
// kernel: the hook and the chains its pod relies on, as the agent's last
// commit left them (expected.json: node.Expected.For, with the pod's index
// entry), or the skeleton of a node whose agent never synced, and its own
// set entries, from the index. Nothing is compiled and other pods' sets are
// not read. Without expected.json, or with one made for another index than
// the one in force, it fails: it cannot tell, so it does not pass.
func (inv *invocation) missing(att *node.Attachment) ([]string, error) {
	idx, exp, err := inv.expected(att.PodKey())
	if err != nil {
		return nil, err
	}
	var mine []node.Membership // none in the skeleton: every chain is everyone's
	if idx != nil {
		mine = idx.Pods[att.PodKey()]
	}
	var problems []string
	for _, f := range podFamilies(att.IPs) {
		hooks, chains, ok := exp.For(f, mine)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s/expected.json names no %s ruleset", inv.conf.DataDir, f))
			continue
		}
		diff, err := inv.kernel.DiffRendered(inv.ctx, f, hooks, chains)
		if err != nil {
			return nil, kernelError("read back "+f.String(), err)
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

// expected returns the index (with the memberships of pod podKey only) and
// what CHECK compares with the kernel: expected.json when the agent has
// synced (an error when it is missing or names another index), else the
// skeleton ADD installs (node.Skeleton with the netconf's drop logging).
func (inv *invocation) expected(podKey string) (*node.Index, *node.Expected, error) {
	idx, sum, err := inv.store.ReadIndexSummed(podKey)
	if errors.Is(err, os.ErrNotExist) {
		skeleton, err := node.Skeleton(nil, dropLog(inv.conf))
		if err != nil {
			return nil, nil, kernelError("compile skeleton", err)
		}
		return nil, node.ExpectedOf(skeleton), nil
	}
	if err != nil {
		return nil, nil, types.NewError(types.ErrIOFailure, "read index", err.Error())
	}
	exp, err := inv.store.ReadExpected()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, errorf(types.ErrInternal, "netpol: the agent has synced under %s but left no expected.json, "+
			"the rules CHECK compares with the kernel: it has not committed a sync since netpol was installed or upgraded; "+
			"CHECK cannot verify the pod until it does", inv.conf.DataDir)
	}
	if err != nil {
		return nil, nil, types.NewError(types.ErrIOFailure, "read the expected rules", err.Error())
	}
	if exp.Index != sum {
		return nil, nil, errorf(types.ErrTryAgainLater, "netpol: %s/expected.json was made for another index (sha256 %s) "+
			"than the one in force (sha256 %s): the agent writes it just after each commit; CHECK again",
			inv.conf.DataDir, exp.Index, sum)
	}
	return idx, exp, nil
}
