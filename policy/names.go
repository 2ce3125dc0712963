package policy

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"

	"github.com/netpol/netpol/ipt"
)

// Names of the fixed chains. Every chain netpol owns starts with ipt.Prefix;
// the variable ones end in a hash of what they stand for, so no user string
// ever reaches a chain or set name.
const (
	// ChainForward is the one chain jumped to from the built-in FORWARD chain.
	ChainForward = "NETPOL-FORWARD"
	// ChainBridged and ChainRouted are the two packet paths: same-node traffic
	// through the bridge (physdev) and routed traffic (gateway, other nodes).
	ChainBridged = "NETPOL-BRIDGED"
	ChainRouted  = "NETPOL-ROUTED"
	// ChainIngress and ChainEgress dispatch a packet to the group chain of its
	// destination (ingress) or source (egress) pod, by set lookup.
	ChainIngress = "NETPOL-INGRESS"
	ChainEgress  = "NETPOL-EGRESS"
	// ChainAllow clears the pending bit (AllowMark) of a packet that some
	// policy rule allowed. ChainPass names no chain of a compiled ruleset
	// (a group chain returns by itself); a chain of that name left in the
	// kernel is one of ours (ipt.Owned) and is deleted as stale.
	ChainAllow = "NETPOL-ALLOW"
	ChainPass  = "NETPOL-PASS"
)

// AllowMark is the packet mark bit (value/mask) that carries a group's
// verdict from a policy chain back to the group chain. Set, it means
// "pending: no policy of the group has allowed the packet yet": a group
// chain sets it on entry, a policy rule that allows clears it (through
// ChainAllow), and the group chain returns as soon as it finds it clear;
// so it is clear again whenever a packet leaves netpol. kube-proxy uses
// 0x4000 and 0x8000; flannel and the bridge plugin use none.
const AllowMark = "0x10000/0x10000"

// markClear is the --set-xmark argument that clears AllowMark.
const markClear = "0x0/0x10000"

// pending matches a packet that carries AllowMark: no policy of the group
// allowed it yet.
const pending = ipt.Mark(AllowMark)

// allowed matches a packet whose AllowMark is clear: a policy of the group
// allowed it.
const allowed = ipt.Mark(markClear)

// Direction is the side of a pod that a policy governs.
type Direction int

const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// letter is the one-letter tag of d in chain and set names.
func (d Direction) letter() string {
	if d == Egress {
		return "E"
	}
	return "I"
}

// DenySet is the set of pod addresses that are denied everything but node
// traffic because netpol cannot know their policies yet (fail closed).
func DenySet(f ipt.Family) string { return familyPrefix(f) + "-DENY" }

func familyPrefix(f ipt.Family) string { return ipt.Prefix + strconv.Itoa(int(f)) }

// hash returns 16 base32 characters (80 bits) of SHA-256 of key.
func hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// policyChain names the chain holding the rules of one policy in direction d.
func policyChain(d Direction, policyKey string) string {
	return ipt.Prefix + "-" + d.letter() + "-" + hash(policyKey)
}

// groupChain names the chain of a group of pods selected by the same
// policies in direction d.
func groupChain(d Direction, groupKey string) string {
	return ipt.Prefix + "-G" + d.letter() + "-" + hash(groupKey)
}

// groupSet names the set of the addresses of a group's pods.
func groupSet(f ipt.Family, d Direction, groupKey string) string {
	return familyPrefix(f) + "-G" + d.letter() + "-" + hash(groupKey)
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
func scanChain(d Direction) string { return ipt.Prefix + "-SCAN-" + d.letter() }

// treeChain names the node of d's dispatch tree that covers the groups
// numbered lo..lo+span-1.
func treeChain(d Direction, lo, span int) string {
	return ipt.Prefix + "-T" + d.letter() + "-" + strconv.Itoa(lo) + "-" + strconv.Itoa(span)
}

// isoSet names the set of every local pod that a policy isolates in
// direction d.
func isoSet(f ipt.Family, d Direction) string {
	return familyPrefix(f) + "-ISO-" + d.letter()
}

// bitSet names the set of the local pods of direction d whose group number
// has bit level set.
func bitSet(f ipt.Family, d Direction, level int) string {
	return familyPrefix(f) + "-BIT-" + d.letter() + "-" + strconv.Itoa(level)
}
