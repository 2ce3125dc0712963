package policy

// PatchPeers is Patch's path for changes of pods of other nodes alone
// (patchPeers), for tests that must see it taken: ok false when it
// declines.
func PatchPeers(prev *Compiled, last, next *Snapshot, atts []Attachment) (*Compiled, bool) {
	changed, ok := changedPods(last, next)
	if !ok {
		return nil, false
	}
	return patchPeers(prev, last, next, atts, changed)
}

// PatchPolicies is Patch's path for changes of policies that select the
// same pods of this node as before (patchPolicies), for tests.
func PatchPolicies(prev *Compiled, last, next *Snapshot) (*Compiled, bool) {
	return patchPolicies(prev, last, next)
}
