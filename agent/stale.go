package agent

import (
	"errors"
	"os"
	"time"

	"github.com/netpol/netpol/policy"
)

// staleReason is logged with every record removed as stale.
const staleReason = "its pod is not on this node in the source and its network namespace is gone: a DEL that never came"

// staleRecords returns the attachments whose records are leftovers: the
// pod is not one of this node's pods in snap (deleted, or a pod of the same
// name now elsewhere), the network namespace ADD was given no longer exists
// (records of older versions name none: taken as gone), and the record is
// older than grace (records of older versions: older than any). grace 0
// finds none.
func staleRecords(snap *policy.Snapshot, atts []policy.Attachment, now time.Time, grace time.Duration,
	netnsExists func(string) bool) []policy.Attachment {
	if grace <= 0 {
		return nil
	}
	local := map[string]bool{}
	for i := range snap.Pods {
		if p := &snap.Pods[i]; snap.IsLocal(p) {
			local[p.Key()] = true
		}
	}
	var out []policy.Attachment
	for _, a := range atts {
		if local[a.PodKey()] || now.Sub(a.Created) < grace || (a.Netns != "" && netnsExists(a.Netns)) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// netnsExists reports whether a network namespace path exists; an error
// other than "does not exist" counts as existing (never remove a record
// on doubt).
func netnsExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// removeStale removes the records staleRecords finds, logging each, and
// returns the attachments that remain: the sync that follows takes the
// removed ones' addresses out of every set. The caller holds the lock.
func (a *Agent) removeStale(snap *policy.Snapshot, atts []policy.Attachment) []policy.Attachment {
	now, exists := time.Now(), netnsExists
	if a.Now != nil {
		now = a.Now()
	}
	if a.NetnsExists != nil {
		exists = a.NetnsExists
	}
	stale := staleRecords(snap, atts, now, a.StaleGrace, exists)
	if len(stale) == 0 {
		return atts
	}
	removed := map[[2]string]bool{}
	for _, s := range stale {
		log := a.Log.With("pod", s.PodKey(), "containerID", s.ContainerID, "ifName", s.IfName, "ips", s.IPs,
			"netns", s.Netns, "created", s.Created)
		if err := a.Store.RemoveAttachment(s.ContainerID, s.IfName); err != nil {
			log.Error("remove stale pod record", "err", err)
			continue
		}
		log.Warn("stale pod record removed", "reason", staleReason, "grace", a.StaleGrace)
		removed[[2]string{s.ContainerID, s.IfName}] = true
	}
	var keep []policy.Attachment
	for _, att := range atts {
		if !removed[[2]string{att.ContainerID, att.IfName}] {
			keep = append(keep, att)
		}
	}
	return keep
}
