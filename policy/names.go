package policy

import (
	"strconv"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

// The names of the fixed chains and of the mark, from package node (see
// there); the variable chains and sets end in a hash of what they stand
// for, so no user string ever reaches a chain or set name.
const (
	ChainForward = node.ChainForward
	ChainBridged = node.ChainBridged
	ChainRouted  = node.ChainRouted
	ChainIngress = node.ChainIngress
	ChainEgress  = node.ChainEgress
	ChainAllow   = node.ChainAllow
	ChainPass    = node.ChainPass
	PendingMark  = node.PendingMark
)

// markClear clears PendingMark; pending and allowed match a packet whose
// group has not, and has, allowed it (see node.PendingMark).
const (
	markClear = node.MarkClear
	pending   = node.Pending
	allowed   = node.Allowed
)

// Direction is the side of a pod that a policy governs (node.Direction).
type Direction = node.Direction

const (
	Ingress = node.Ingress
	Egress  = node.Egress
)

// DenySet is the set of pod addresses that are denied everything but node
// traffic because netpol cannot know their policies yet (fail closed).
func DenySet(f ipt.Family) string { return node.DenySet(f) }

func familyPrefix(f ipt.Family) string { return node.FamilyPrefix(f) }

func hash(key string) string { return node.Hash(key) }

func dispatchDir(d Direction) ipt.Dir { return node.DispatchDir(d) }

// policyChain names the chain holding the rules of one policy in direction d.
func policyChain(d Direction, policyKey string) string {
	return ipt.Prefix + "-" + d.Letter() + "-" + hash(policyKey)
}

// groupChain names the chain of a group of pods selected by the same
// policies in direction d.
func groupChain(d Direction, groupKey string) string {
	return ipt.Prefix + "-G" + d.Letter() + "-" + hash(groupKey)
}

// groupSet names the set of the addresses of a group's pods.
func groupSet(f ipt.Family, d Direction, groupKey string) string {
	return familyPrefix(f) + "-G" + d.Letter() + "-" + hash(groupKey)
}

// peerSet names the set of the addresses of the pods a selector peer selects.
func peerSet(f ipt.Family, peerKey string) string {
	return familyPrefix(f) + "-P-" + hash(peerKey)
}

// blockSet names the set of one ipBlock (cidr minus except).
func blockSet(f ipt.Family, blockKey string) string {
	return familyPrefix(f) + "-B-" + hash(blockKey)
}

// namedPortSet names the set of address,protocol:port entries of the pods
// that declare a container port with the given protocol and name.
func namedPortSet(f ipt.Family, key string) string {
	return familyPrefix(f) + "-N-" + hash(key)
}

// scanChain names the chain that tries every group of direction d in turn:
// the dispatch's fallback when its tree misses (see dispatcher).
func scanChain(d Direction) string { return ipt.Prefix + "-SCAN-" + d.Letter() }

// treeChain names the node of d's dispatch tree that covers the groups
// numbered lo..lo+span-1.
func treeChain(d Direction, lo, span int) string {
	return ipt.Prefix + "-T" + d.Letter() + "-" + strconv.Itoa(lo) + "-" + strconv.Itoa(span)
}

// isoSet names the set of every local pod that a policy isolates in
// direction d.
func isoSet(f ipt.Family, d Direction) string { return node.IsolatedSet(f, d) }

// bitSet names the set of the local pods of direction d whose group number
// has bit level set.
func bitSet(f ipt.Family, d Direction, level int) string {
	return familyPrefix(f) + "-BIT-" + d.Letter() + "-" + strconv.Itoa(level)
}
