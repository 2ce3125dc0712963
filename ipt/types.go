// Package ipt is the kernel edge of netpol: it makes the filter table and the
// ipsets of one network namespace match a desired Ruleset.
//
// Everything here speaks in typed values (Family, Chain, Rule, Set) that the
// pure compiler in package policy produces; rules are rendered to
// iptables-restore text in exactly one place (render.go), and applied in one
// `iptables-restore --noflush` transaction per family that touches only chains
// whose names start with Prefix. ipt imports no other netpol package.
package ipt

import "strings"

// Prefix starts the name of every chain and set netpol owns. Anything else in
// the kernel is never flushed, deleted or rewritten.
const Prefix = "NETPOL"

// MaxChainName is the longest chain name iptables accepts.
const MaxChainName = 28

// MaxSetName is the longest set name ipset accepts.
const MaxSetName = 31

// Family is an address family: each has its own filter table (iptables or
// ip6tables) and its own sets (inet or inet6).
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Families lists both families in a fixed order.
var Families = []Family{IPv4, IPv6}

func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// SetFamily is the ipset `family` option for f.
func (f Family) SetFamily() string {
	if f == IPv6 {
		return "inet6"
	}
	return "inet"
}

// SetType is an ipset type.
type SetType string

const (
	HashIP     SetType = "hash:ip"      // pod IPs (peers, dispatch groups)
	HashNet    SetType = "hash:net"     // ipBlocks; except entries carry NoMatch
	HashIPPort SetType = "hash:ip,port" // named ports resolved per pod
)

// Member is one entry of a set, in ipset's own syntax ("10.0.0.1",
// "172.17.0.0/16", "10.0.0.1,tcp:8080").
type Member struct {
	Entry   string
	NoMatch bool // hash:net only: this prefix is carved out of a larger one
}

// Set is a desired ipset. Members are kept sorted by the compiler.
type Set struct {
	Name    string
	Type    SetType
	Family  Family
	Comment string // readable origin, for humans and logs only (never in argv)
	Members []Member
}

// Target is where a verdict sends a packet: one of the built-in targets
// below, or a chain of ours by its name (Target(name)).
type Target string

// The built-in targets a rule may end with; RenderRule renders exactly these
// as iptables-save prints them (others, such as REJECT or LOG, gain options
// there that read-back would report as a difference forever).
const (
	Accept     Target = "ACCEPT"
	Drop       Target = "DROP"
	Return     Target = "RETURN"
	MarkTarget Target = "MARK" // with Verdict.SetMark
	// NFLOGTarget (log.go), with Verdict.Log.
)

// Builtin reports whether t is one of the built-in targets.
func (t Target) Builtin() bool {
	switch t {
	case Accept, Drop, Return, MarkTarget, NFLOGTarget:
		return true
	}
	return false
}

// Verdict is how a rule ends: a jump or goto to a chain, or a built-in target.
type Verdict struct {
	Target Target
	Goto   bool // -g instead of -j
	// SetMark, with Target MarkTarget: the value/mask for --set-xmark.
	SetMark string
	// Log, with Target NFLOGTarget: the group and prefix.
	Log *Log
}

// Jump returns a -j verdict.
func Jump(t Target) Verdict { return Verdict{Target: t} }

// Goto returns a -g verdict.
func Goto(t Target) Verdict { return Verdict{Target: t, Goto: true} }

// SetMark returns the verdict `-j MARK --set-xmark value`.
func SetMark(value string) Verdict { return Verdict{Target: MarkTarget, SetMark: value} }

// BuiltinChain is a built-in chain of the filter table, where hooks live.
type BuiltinChain string

const (
	Input   BuiltinChain = "INPUT"
	Forward BuiltinChain = "FORWARD"
	Output  BuiltinChain = "OUTPUT"
)

// builtinChains are the built-in chains of the filter table.
var builtinChains = []BuiltinChain{Input, Forward, Output}

// Rule is one rule of a chain. Matches render in order, then the comment,
// then the verdict.
type Rule struct {
	Matches []Match
	Comment string // readable; escaped when rendered, never part of a name
	Verdict Verdict
}

// Chain is a desired user chain of the filter table, with all its rules.
type Chain struct {
	Name  string
	Rules []Rule
}

// Hook is a rule we own inside a built-in chain (FORWARD): the only place
// we touch a chain that is not ours. It is inserted at Position (1-based)
// when missing and deleted on uninstall.
type Hook struct {
	Chain    BuiltinChain
	Position int
	Rule     Rule
}

// Ruleset is the whole desired state of one family: hooks into built-in
// chains, our chains with their rules, and our sets.
type Ruleset struct {
	Family Family
	Hooks  []Hook
	Chains []Chain // sorted by name
	Sets   []Set   // sorted by name
}

// ChainNames returns the names of the chains of r.
func (r *Ruleset) ChainNames() []string {
	names := make([]string, len(r.Chains))
	for i, c := range r.Chains {
		names[i] = c.Name
	}
	return names
}

// Owned reports whether a chain or set name belongs to netpol: "NETPOL-"
// (chains, temporary sets), "NETPOL4-" or "NETPOL6-" (sets). Another tool's
// NETPOLICY or NETPOLX is not ours.
func Owned(name string) bool {
	for _, p := range []string{Prefix + "-", Prefix + "4-", Prefix + "6-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Entry is one member of one set, for the plugin's incremental updates on
// ADD and DEL (`ipset add SET VALUE`).
type Entry struct {
	Set   string
	Value string
}
