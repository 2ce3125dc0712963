package plugin

import (
	"errors"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/policy/node"
	"github.com/netpol/netpol/state"
)

// Del handles CNI DEL: remove exactly what ADD of this attachment added. It
// is idempotent and works without prevResult and after the record is gone.
//
// DEL never fails on CNI_ARGS. The record ADD wrote names the pod, so an
// added container is cleaned up whatever names DEL is given. Without a
// record, a namespace or name the API server would reject is ignored: ADD
// refuses such names, so no pod was ever added under them, and DEL removes
// only what prevResult's addresses hold that no recorded pod still owns.
//
// After uninstall (no data directory, or an empty one) it succeeds and
// creates nothing.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	return p.lockedIfInstalled(args, "DEL", func(inv *invocation) error { return inv.del(args) })
}

func (inv *invocation) del(args *skel.CmdArgs) error {
	att, err := inv.store.ReadAttachment(args.ContainerID, args.IfName)
	if q := (state.Quarantined{}); errors.As(err, &q) {
		logQuarantined(inv.log, q)
	}
	if errors.Is(err, os.ErrNotExist) {
		// No record (DEL twice, state lost, or the record was unusable):
		// fall back to prevResult. One with no usable address cannot have
		// been added: nothing to release but the record, so its error does
		// not fail DEL.
		ips, _ := resultIPs(inv.conf.PrevResult, args.IfName)
		att = &node.Attachment{ContainerID: args.ContainerID, IfName: args.IfName, IPs: ips}
		if pod, perr := conf.ParsePodArgs(args.Args); perr == nil { // else: never added under that name
			att.Namespace, att.Name = pod.Namespace, pod.Name
		}
	} else if err != nil {
		return types.NewError(types.ErrIOFailure, "read pod record", err.Error())
	}
	if err := inv.release(att); err != nil {
		return err
	}
	inv.log.Info("pod deleted", "pod", att.PodKey(), "ips", att.IPs)
	return nil
}

// release removes an attachment's record and its set entries, keeping the
// entries that another recorded attachment with the same address still owns.
func (inv *invocation) release(att *node.Attachment) error {
	if err := inv.store.RemoveAttachment(att.ContainerID, att.IfName); err != nil {
		return types.NewError(types.ErrIOFailure, "remove pod record", err.Error())
	}
	if len(att.IPs) == 0 {
		return nil
	}
	idx, err := inv.readIndex("")
	if err != nil {
		return err
	}
	remaining, err := inv.attachments()
	if err != nil {
		return err
	}
	if err := inv.kernel.DelEntries(inv.ctx, idx.Release(att, remaining)); err != nil {
		return kernelError("remove pod from sets", err)
	}
	return nil
}

// GC handles CNI GC: release every recorded attachment that is not in
// cni.dev/valid-attachments.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	return p.lockedIfInstalled(args, "GC", (*invocation).gc)
}

func (inv *invocation) gc() error {
	valid := map[[2]string]bool{}
	for _, a := range inv.conf.ValidAttachments {
		valid[[2]string{a.ContainerID, a.IfName}] = true
	}
	atts, err := inv.attachments()
	if err != nil {
		return err
	}
	for i := range atts {
		if valid[[2]string{atts[i].ContainerID, atts[i].IfName}] {
			continue
		}
		if err := inv.release(&atts[i]); err != nil {
			return err
		}
		inv.log.Info("stale attachment collected", "pod", atts[i].PodKey(), "containerID", atts[i].ContainerID)
	}
	return nil
}
