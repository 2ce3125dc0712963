package ipt

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrInvalid is wrapped by every error Validate (and the functions that call
// it) returns for a malformed ruleset, set, entry or name.
var ErrInvalid = errors.New("invalid")

// nameChars are the characters allowed in chain and set names.
const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:+"

// checkName reports whether name is a non-empty chain or set name of at most
// max characters, made only of nameChars and not starting with '-'.
func checkName(name string, max int) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalid)
	case len(name) > max:
		return fmt.Errorf("%w: name %q is %d characters, longer than %d", ErrInvalid, name, len(name), max)
	case strings.Trim(name, nameChars) != "" || name[0] == '-':
		return fmt.Errorf("%w: name %q has characters outside [A-Za-z0-9-_.:+]", ErrInvalid, name)
	}
	return nil
}

// checkToken reports whether s can stand as one word of restore input: not
// empty, no white space, control characters or quotes.
func checkToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\' {
			return fmt.Errorf("%w: %s %q contains a space, quote or control character", ErrInvalid, what, s)
		}
	}
	return nil
}

// Validate checks rs before anything reaches the kernel: owned, well-formed
// names of legal length (chains at most MaxChainName, sets at most
// MaxSetName), known set types, a Protocol before DPorts, well-formed ports,
// marks, states and limits, targets that are ours or
// ACCEPT/DROP/RETURN/MARK/NFLOG (the ones RenderRule prints canonically; an
// NFLOG prefix of at most MaxLogPrefix bytes of [A-Za-z0-9_-]), hooks in a built-in chain that jump
// to a chain of ours (position 0 means 1), and no argument that
// could break out of its word in restore text. The error names the offender.
// References to chains or sets that do not exist are left to the kernel.
func Validate(rs *Ruleset) error {
	if rs.Family != IPv4 && rs.Family != IPv6 {
		return fmt.Errorf("%w: ruleset family %d", ErrInvalid, int(rs.Family))
	}
	seen := make(map[string]bool, len(rs.Chains))
	for _, c := range rs.Chains {
		if err := checkOwnedName(c.Name, MaxChainName); err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		if seen[c.Name] {
			return fmt.Errorf("%w: chain %s declared twice", ErrInvalid, c.Name)
		}
		seen[c.Name] = true
		for i, r := range c.Rules {
			if err := validateRule(r); err != nil {
				return fmt.Errorf("chain %s rule %d: %w", c.Name, i+1, err)
			}
		}
	}
	for i, h := range rs.Hooks {
		if err := validateHook(h); err != nil {
			return fmt.Errorf("hook %d in %s: %w", i+1, h.Chain, err)
		}
	}
	return validateSets(rs.Sets, rs.Family)
}

func checkOwnedName(name string, max int) error {
	if err := checkName(name, max); err != nil {
		return err
	}
	if !Owned(name) {
		return fmt.Errorf("%w: name %q does not start with %s", ErrInvalid, name, Prefix)
	}
	return nil
}

func validateHook(h Hook) error {
	if err := checkName(string(h.Chain), MaxChainName); err != nil {
		return err
	}
	switch {
	case Owned(string(h.Chain)):
		return fmt.Errorf("%w: hook chain %s is ours, not a built-in chain", ErrInvalid, h.Chain)
	case h.Position < 0:
		return fmt.Errorf("%w: hook position %d", ErrInvalid, h.Position)
	case !Owned(string(h.Rule.Verdict.Target)):
		return fmt.Errorf("%w: hook target %q does not start with %s", ErrInvalid, h.Rule.Verdict.Target, Prefix)
	}
	return validateRule(h.Rule)
}

// validateRule checks the matches and the verdict of one rule.
func validateRule(r Rule) error {
	var proto Protocol
	for i, m := range r.Matches {
		if m == nil {
			return fmt.Errorf("%w: match %d is nil", ErrInvalid, i+1)
		}
		if _, fixed := m.(SameAddress); !fixed { // its program is ours, quoted
			for _, a := range m.Args() {
				if err := checkToken("match argument", a); err != nil {
					return fmt.Errorf("match %d: %w", i+1, err)
				}
			}
		}
		if err := validateMatch(m, &proto); err != nil {
			return fmt.Errorf("match %d: %w", i+1, err)
		}
	}
	v := r.Verdict
	if err := checkName(string(v.Target), MaxChainName); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if !Owned(string(v.Target)) && !v.Target.Builtin() {
		return fmt.Errorf("%w: target %q is neither ours nor ACCEPT, DROP, RETURN, MARK or NFLOG", ErrInvalid, v.Target)
	}
	if v.Target == NFLOGTarget {
		if err := validateLog(v.Log); err != nil {
			return err
		}
	}
	if v.Target == MarkTarget {
		if _, _, ok := parseMark(v.SetMark); !ok {
			return fmt.Errorf("%w: MARK value %q is not VALUE[/MASK]", ErrInvalid, v.SetMark)
		}
	}
	return nil
}

// validateMatch checks one match; proto tracks the rule's Protocol so far.
func validateMatch(m Match, proto *Protocol) error {
	switch m := m.(type) {
	case Protocol:
		if *proto != "" {
			return fmt.Errorf("%w: second protocol %q", ErrInvalid, string(m))
		}
		*proto = m
	case DPorts:
		return validateDPorts(m, *proto)
	case SetMatch:
		if err := checkName(m.Set, MaxSetName); err != nil {
			return err
		}
		if m.Dir == "" || strings.Trim(strings.ReplaceAll(string(m.Dir), ",", ""), "srcdt") != "" {
			return fmt.Errorf("%w: set direction %q", ErrInvalid, string(m.Dir))
		}
	case CTState:
		if len(m) == 0 {
			return fmt.Errorf("%w: empty conntrack state", ErrInvalid)
		}
	case SameAddress:
		if sameAddressBPF[m.Family] == "" {
			return fmt.Errorf("%w: same-address match of family %d", ErrInvalid, int(m.Family))
		}
	case Limit:
		return validateLimit(m)
	case Mark:
		if _, _, ok := parseMark(string(m)); !ok {
			return fmt.Errorf("%w: mark %q is not VALUE[/MASK]", ErrInvalid, string(m))
		}
	}
	return nil
}

func validateDPorts(m DPorts, proto Protocol) error {
	if proto == "" || proto.canonical() != m.Proto.canonical() {
		return fmt.Errorf("%w: ports of %q without a preceding protocol %q match", ErrInvalid, string(m.Proto), string(m.Proto))
	}
	slots := 0
	for _, r := range m.Ports {
		last := r.Last
		if last == 0 {
			last = r.First
		}
		if r.First < 1 || last > 65535 || last < r.First {
			return fmt.Errorf("%w: port range %s", ErrInvalid, r)
		}
		slots += r.slots()
	}
	if len(m.Ports) == 0 || (len(m.Ports) > 1 && slots > MaxMultiport) {
		return fmt.Errorf("%w: %d ports (%d multiport slots, at most %d)", ErrInvalid, len(m.Ports), slots, MaxMultiport)
	}
	return nil
}

// validateSets checks the sets of a ruleset of family fam.
func validateSets(sets []Set, fam Family) error {
	seen := make(map[string]bool, len(sets))
	for _, s := range sets {
		if err := validateSet(s, fam); err != nil {
			return fmt.Errorf("set: %w", err)
		}
		if seen[s.Name] {
			return fmt.Errorf("%w: set %s declared twice", ErrInvalid, s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func validateSet(s Set, fam Family) error {
	if err := checkOwnedName(s.Name, MaxSetName); err != nil {
		return err
	}
	if s.Family != 0 && s.Family != fam {
		return fmt.Errorf("%w: set %s is %s in a %s ruleset", ErrInvalid, s.Name, s.Family, fam)
	}
	switch s.Type {
	case HashIP, HashNet, HashIPPort:
	default:
		return fmt.Errorf("%w: set %s has unknown type %q", ErrInvalid, s.Name, string(s.Type))
	}
	if s.Family != 0 {
		fam = s.Family
	}
	for _, m := range s.Members {
		if err := checkToken("member of "+s.Name, m.Entry); err != nil {
			return err
		}
		if err := checkMemberFamily(s.Name, fam, m.Entry); err != nil {
			return err
		}
		if m.NoMatch && s.Type != HashNet {
			return fmt.Errorf("%w: set %s: nomatch member %s in a %s set", ErrInvalid, s.Name, m.Entry, s.Type)
		}
	}
	return nil
}

// memberAddr parses the address part of a set entry ("ADDR", "ADDR/LEN",
// "ADDR,PROTO:PORT").
func memberAddr(entry string) (netip.Addr, bool) {
	addr, _, _ := strings.Cut(entry, ",")
	if strings.IndexByte(addr, '/') >= 0 {
		p, err := netip.ParsePrefix(addr)
		return p.Addr(), err == nil
	}
	a, err := netip.ParseAddr(addr)
	return a, err == nil && a.Zone() == ""
}

// checkMemberFamily refuses an entry whose address is not of family fam: an
// inet set holds IPv4 addresses, an inet6 set IPv6 ones that are not
// IPv4-mapped. ipset itself would store "::ffff:10.0.0.1" in an inet6 set,
// where no IPv4 packet ever meets it, so such a member is never written.
func checkMemberFamily(set string, fam Family, entry string) error {
	a, ok := memberAddr(entry)
	switch {
	case !ok:
		return fmt.Errorf("%w: set %s: member %q is not an address, prefix or address,port", ErrInvalid, set, entry)
	case a.Is4In6():
		return fmt.Errorf("%w: set %s: member %q is an IPv4-mapped IPv6 address", ErrInvalid, set, entry)
	case a.Is4() != (fam == IPv4):
		return fmt.Errorf("%w: set %s: member %q is not an %s address", ErrInvalid, set, entry, fam)
	}
	return nil
}
