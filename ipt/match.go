package ipt

import (
	"strconv"
	"strings"
)

// Match is one match of a rule. Args returns its iptables arguments in the
// canonical form iptables-save prints them, so that read-back compares equal.
//
// iptables-save always prints the protocol (`-p`) before every other match,
// whatever order the rule was written in; RenderRule therefore hoists a
// Protocol match to the front. The compiler always puts Protocol before
// DPorts (a port match needs `-p` anyway), so the rendered order is the
// written order in practice.
type Match interface {
	Args() []string
}

// Dir is the direction flags of a set match: "src", "dst", "dst,dst", ...
type Dir string

const (
	Src    Dir = "src"
	Dst    Dir = "dst"
	DstDst Dir = "dst,dst" // hash:ip,port keyed on the destination address and port
)

// SetMatch is `-m set --match-set NAME DIR`.
type SetMatch struct {
	Set string
	Dir Dir
}

func (m SetMatch) Args() []string {
	return []string{"-m", "set", "--match-set", m.Set, string(m.Dir)}
}

// Protocol is `-p PROTO` (lower case: tcp, udp, sctp). iptables-save prints
// protocol names in lower case, so Args lower-cases it.
type Protocol string

func (p Protocol) Args() []string { return []string{"-p", p.canonical()} }

func (p Protocol) canonical() string { return strings.ToLower(string(p)) }

// PortRange is a destination port or an inclusive range (Last == 0 for one port).
type PortRange struct {
	First, Last int32
}

func (r PortRange) String() string {
	if r.Last == 0 || r.Last == r.First {
		return strconv.Itoa(int(r.First))
	}
	return strconv.Itoa(int(r.First)) + ":" + strconv.Itoa(int(r.Last))
}

// slots is the number of multiport slots r takes: a range counts twice.
func (r PortRange) slots() int {
	if r.Last == 0 || r.Last == r.First {
		return 1
	}
	return 2
}

// DPorts matches destination ports of Proto: a single port renders as
// `-m tcp --dport N`, several as `-m multiport --dports a,b:c` (at most
// MaxMultiport items, ranges counting twice; the compiler splits longer lists).
// Both forms need a preceding `-p PROTO` in the same rule: the compiler always
// puts a Protocol match before DPorts, and Validate checks it.
type DPorts struct {
	Proto Protocol
	Ports []PortRange
}

// MaxMultiport is the number of port slots one multiport match holds.
const MaxMultiport = 15

func (m DPorts) Args() []string {
	if len(m.Ports) == 1 {
		return []string{"-m", m.Proto.canonical(), "--dport", m.Ports[0].String()}
	}
	parts := make([]string, len(m.Ports))
	for i, r := range m.Ports {
		parts[i] = r.String()
	}
	return []string{"-m", "multiport", "--dports", strings.Join(parts, ",")}
}

// PhysdevBridged is `-m physdev --physdev-is-bridged`.
type PhysdevBridged struct{}

func (PhysdevBridged) Args() []string {
	return []string{"-m", "physdev", "--physdev-is-bridged"}
}

// ctOrder is the order in which iptables-save prints conntrack states.
var ctOrder = []string{"INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT"}

// CTState is `-m conntrack --ctstate S1,S2`. Args prints the states upper
// case, without duplicates, in iptables-save's fixed order
// (INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED,SNAT,DNAT); unknown states keep
// their written order after the known ones.
type CTState []string

func (s CTState) Args() []string {
	seen := make(map[string]bool, len(s))
	for _, st := range s {
		seen[strings.ToUpper(st)] = true
	}
	out := make([]string, 0, len(seen))
	for _, st := range ctOrder {
		if seen[st] {
			out = append(out, st)
			delete(seen, st)
		}
	}
	for _, st := range s {
		if up := strings.ToUpper(st); seen[up] {
			out = append(out, up)
			delete(seen, up)
		}
	}
	return []string{"-m", "conntrack", "--ctstate", strings.Join(out, ",")}
}

// Mark is `-m mark --mark VALUE/MASK`. Args prints it as iptables-save does:
// hexadecimal, and without the mask when the mask is 0xffffffff
// ("16" and "0x10/0xffffffff" both print as "0x10").
type Mark string

func (m Mark) Args() []string {
	v, mask, ok := parseMark(string(m))
	if !ok {
		return []string{"-m", "mark", "--mark", string(m)}
	}
	s := "0x" + strconv.FormatUint(v, 16)
	if mask != 0xffffffff {
		s += "/0x" + strconv.FormatUint(mask, 16)
	}
	return []string{"-m", "mark", "--mark", s}
}

// Bits returns the value and mask of m; ok is false when m is not
// VALUE[/MASK] (Validate rejects such a rule). A packet matches when its
// mark ANDed with mask equals value.
func (m Mark) Bits() (value, mask uint32, ok bool) {
	v, mk, ok := parseMark(string(m))
	return uint32(v), uint32(mk), ok
}

// parseMark parses "VALUE[/MASK]" (decimal or 0x-hex, 32 bits); the mask
// defaults to 0xffffffff.
func parseMark(s string) (value, mask uint64, ok bool) {
	vs, ms, hasMask := strings.Cut(s, "/")
	value, err := strconv.ParseUint(vs, 0, 32)
	if err != nil {
		return 0, 0, false
	}
	mask = 0xffffffff
	if hasMask {
		if mask, err = strconv.ParseUint(ms, 0, 32); err != nil {
			return 0, 0, false
		}
	}
	return value, mask, true
}

// SameAddress matches a packet whose source address is its destination
// address: a pod that reaches itself through a Service (kube-proxy's DNAT
// back to its own address, hairpinned on its bridge port) crosses FORWARD
// that way. No iptables match compares two header fields, and ipset's only
// address-pair type (hash:net,net) is not in every kernel, so this is
// `-m bpf --bytecode PROG` (xt_bpf, Linux 3.9 and later, both backends): a
// classic BPF program run on the network header that loads each word of
// the source address into X and compares the same word of the destination
// with it, returning 1 (match) only when all are equal. It costs a few
// instructions, needs no set and no rule per pod, and no ADD or DEL changes
// it. Args prints the program as iptables-save does (quoted).
type SameAddress struct {
	Family Family
}

// sameAddressBPF is the program of SameAddress per family, in the
// `--bytecode` syntax ("COUNT,code jt jf k,..."): ld [src word]; tax;
// ld [dst word]; jeq x, next, fail; ... ret #1; fail: ret #0.
var sameAddressBPF = map[Family]string{
	// src at 12, dst at 16 of the IPv4 header
	IPv4: "6,32 0 0 12,7 0 0 0,32 0 0 16,29 0 1 0,6 0 0 1,6 0 0 0",
	// src at 8..23, dst at 24..39 of the IPv6 header
	IPv6: "18,32 0 0 8,7 0 0 0,32 0 0 24,29 0 13 0," +
		"32 0 0 12,7 0 0 0,32 0 0 28,29 0 9 0," +
		"32 0 0 16,7 0 0 0,32 0 0 32,29 0 5 0," +
		"32 0 0 20,7 0 0 0,32 0 0 36,29 0 1 0," +
		"6 0 0 1,6 0 0 0",
}

func (m SameAddress) Args() []string {
	return []string{"-m", "bpf", "--bytecode", QuoteSave(sameAddressBPF[m.Family])}
}
