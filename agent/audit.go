package agent

import "github.com/netpol/netpol/policy"

// nodeWide returns snap with the node-wide settings of the agent: with
// --audit, Snapshot.Audit (a copy; the source's snapshot is not changed).
// The stored snapshot then says so too, so that a compile of it is what
// the agent applied.
func (a *Agent) nodeWide(snap *policy.Snapshot) *policy.Snapshot {
	if snap.Audit == a.Audit {
		return snap
	}
	c := *snap
	c.Audit = a.Audit
	return &c
}
