package node

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
	// ChainAllow clears the pending bit (PendingMark) of a packet that some
	// policy rule allowed. ChainPass names no chain of a compiled ruleset
	// (a group chain returns by itself); a chain of that name left in the
	// kernel is one of ours (ipt.Owned) and is deleted as stale.
	ChainAllow = "NETPOL-ALLOW"
	ChainPass  = "NETPOL-PASS"
)

// PendingMark is the packet mark bit (value/mask) that carries a group's
// verdict from a policy chain back to the group chain. Set, it means
// "pending: no policy of the group has allowed the packet yet": a group
// chain sets it on entry, a policy rule that allows clears it (through
// ChainAllow), and the group chain returns as soon as it finds it clear;
// so a packet leaves a group chain with it clear unless it is dropped (a
// packet that reaches no group chain keeps the mark it came with).
// kube-proxy uses 0x4000 and 0x8000; flannel and the bridge plugin use
// none.
const PendingMark = "0x10000/0x10000"

// MarkClear is the --set-xmark argument that clears PendingMark.
const MarkClear = "0x0/0x10000"

// Pending matches a packet that carries PendingMark: no policy of the group
// allowed it yet.
const Pending = ipt.Mark(PendingMark)

// Allowed matches a packet whose PendingMark is clear: a policy of the group
// allowed it.
const Allowed = ipt.Mark(MarkClear)

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

// Letter is the one-letter tag of d in chain and set names.
func (d Direction) Letter() string {
	if d == Egress {
		return "E"
	}
	return "I"
}

// DispatchDir is the side of the packet that the dispatch of direction d
// looks the pod up by: the destination for ingress, the source for egress.
func DispatchDir(d Direction) ipt.Dir {
	if d == Egress {
		return ipt.Src
	}
	return ipt.Dst
}

// DenySet is the set of pod addresses that are denied everything but node
// traffic because netpol cannot know their policies yet (fail closed).
func DenySet(f ipt.Family) string { return FamilyPrefix(f) + "-DENY" }

// IsolatedSet is the set of the local pods that some policy isolates in
// direction d: a packet whose pod is in it walks the dispatch tree to the
// pod's group chain; any other packet leaves the direction unrestricted.
func IsolatedSet(f ipt.Family, d Direction) string {
	return FamilyPrefix(f) + "-ISO-" + d.Letter()
}

// isGate reports whether e is an entry of a set that decides whether a
// packet is restricted at all: the DENY set or an isolated set.
func isGate(e ipt.Entry) bool {
	for _, f := range []ipt.Family{ipt.IPv4, ipt.IPv6} {
		if e.Set == DenySet(f) || e.Set == IsolatedSet(f, Ingress) || e.Set == IsolatedSet(f, Egress) {
			return true
		}
	}
	return false
}

// DenyChain names the chain that drops a packet of a pod in the DENY set
// in direction d (it logs the drop first).
func DenyChain(d Direction) string { return ipt.Prefix + "-DENY-" + d.Letter() }

// NoPodSet holds fe80::/10 and ff00::/8 in the IPv6 ruleset (see
// FixedChains).
const NoPodSet = "NETPOL6-NOPOD"

// FamilyPrefix starts the name of every set of family f ("NETPOL4").
func FamilyPrefix(f ipt.Family) string { return ipt.Prefix + strconv.Itoa(int(f)) }

// Hash returns 16 base32 characters (80 bits) of SHA-256 of key: the end
// of the name of a chain or set that stands for key.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}
