package ipt

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// SetInfo is what the kernel says about an existing set: enough to decide
// whether a desired set can be swapped into it.
type SetInfo struct {
	Type   SetType
	Family Family // 0 for sets without a family (list:set, bitmaps)
}

// tempPrefix starts every temporary set name; it is Owned.
const tempPrefix = Prefix + "-TMP-"

// TempSetName is the temporary set that name is filled through before it is
// swapped in: "NETPOL-TMP-" and 20 hex digits of the SHA-256 of name, exactly
// MaxSetName characters, whatever the length of name.
func TempSetName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return tempPrefix + hex.EncodeToString(sum[:])[:MaxSetName-len(tempPrefix)]
}

// RenderSets returns the two inputs of `ipset -exist restore` that make
// every desired set hold exactly its members, given the sets that exist now.
// grow runs before the rules change, shrink after:
//
//   - missing set (grow): `create NAME TYPE family F maxelem M`, `add NAME m`;
//   - existing set of the same type and family: grow adds every desired
//     member to the live set; shrink then fills TempSetName(NAME) with exactly
//     the desired members, `swap TMP NAME`, and `flush TMP` (the caller
//     destroys the emptied temporary out of the transaction: a destroy can be
//     refused while another process dumps the set, and must not abort the
//     sync);
//   - existing set of another type or family (swap refuses those, grow):
//     `destroy NAME` and create it again, which fails while rules still
//     reference it; the compiler derives set names from their type.
//
// Growing first means that while the rules change, a set holds its old and
// its new members: a pod moving from one group (or the DENY set) to another
// is in both for that moment, never in neither, so it is never left without
// its policies. Temporaries must not exist (Apply destroys leftovers first).
// hash:net members with NoMatch get " nomatch". Sets must carry their
// Family. The error names a set whose name or members are invalid.
//
// current, when not nil, is what the kernel holds now (from `ipset save`):
// grow then adds only the members an existing set lacks.
func RenderSets(desired []Set, existing map[string]SetInfo, current map[string]*savedSet) (grow, shrink []byte, err error) {
	var g, sh strings.Builder
	for _, s := range desired {
		if err := validateSet(s, s.Family); err != nil {
			return nil, nil, err
		}
		if s.Family != IPv4 && s.Family != IPv6 {
			return nil, nil, fmt.Errorf("%w: set %s has no family", ErrInvalid, s.Name)
		}
		info, ok := existing[s.Name]
		switch {
		case ok && info.Type == s.Type && info.Family == s.Family:
			writeMembers(&g, s.Name, missingFrom(s, current[s.Name]))
			tmp := TempSetName(s.Name)
			writeSet(&sh, tmp, s)
			fmt.Fprintf(&sh, "swap %s %s\nflush %s\n", tmp, s.Name, tmp)
		case ok:
			fmt.Fprintf(&g, "destroy %s\n", s.Name)
			writeSet(&g, s.Name, s)
		default:
			writeSet(&g, s.Name, s)
		}
	}
	return []byte(g.String()), []byte(sh.String()), nil
}

// renderUngrow returns the input of `ipset -exist restore` that undoes the
// growth RenderSets rendered for desired: in every set that existed with
// the same type and family, `del NAME m` of each desired member that the
// set did not hold before (prev: its members then, as memberKey forms, and
// whether they are known). A set whose previous members are unknown is
// left as it is.
func renderUngrow(desired []Set, existing map[string]SetInfo, prev func(name string) (map[string]bool, bool)) []byte {
	var b strings.Builder
	for _, s := range desired {
		info, ok := existing[s.Name]
		if !ok || info.Type != s.Type || info.Family != s.Family {
			continue
		}
		had, known := prev(s.Name)
		if !known {
			continue
		}
		for _, m := range s.Members {
			if !had[memberKey(s.Type, m.Entry, m.NoMatch)] {
				b.WriteString("del " + s.Name + " " + m.Entry + "\n")
			}
		}
	}
	return []byte(b.String())
}

// writeSet writes the create line of s under name, and its members.
func writeSet(b *strings.Builder, name string, s Set) {
	maxelem := 65536
	for maxelem < 2*len(s.Members) {
		maxelem *= 2
	}
	fmt.Fprintf(b, "create %s %s family %s maxelem %d\n", name, s.Type, s.Family.SetFamily(), maxelem)
	writeMembers(b, name, s)
}

// missingFrom returns s with only the members have lacks (all of them when
// have is unknown).
func missingFrom(s Set, have *savedSet) Set {
	if have == nil {
		return s
	}
	out := s
	out.Members = nil
	for _, m := range s.Members {
		if !have.Members[memberKey(s.Type, m.Entry, m.NoMatch)] {
			out.Members = append(out.Members, m)
		}
	}
	return out
}

// writeMembers writes an add line for every member of s, into name.
func writeMembers(b *strings.Builder, name string, s Set) {
	for _, m := range s.Members {
		b.WriteString("add ")
		b.WriteString(name)
		b.WriteByte(' ')
		b.WriteString(m.Entry)
		if m.NoMatch {
			b.WriteString(" nomatch")
		}
		b.WriteByte('\n')
	}
}

// renderDestroySets returns `destroy NAME` lines for names.
func renderDestroySets(names []string) []byte {
	var b strings.Builder
	for _, n := range names {
		b.WriteString("destroy " + n + "\n")
	}
	return []byte(b.String())
}

// headerFamily finds "family inet|inet6" among the fields of a set header.
func headerFamily(fields []string) Family {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "family" {
			switch fields[i+1] {
			case "inet":
				return IPv4
			case "inet6":
				return IPv6
			}
		}
	}
	return 0
}

// savedSet is one set as `ipset save` prints it.
type savedSet struct {
	SetInfo
	Members map[string]bool // normalized, with " nomatch" when so flagged
	// Refs is how many kernel objects (rules) reference the set, when
	// RefsKnown (read over netlink; `ipset save` does not print it).
	Refs      uint32
	RefsKnown bool
}

// parseIPSetSave parses `ipset save` output.
func parseIPSetSave(out string) map[string]*savedSet {
	sets := make(map[string]*savedSet)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch f[0] {
		case "create":
			sets[f[1]] = &savedSet{
				SetInfo: SetInfo{Type: SetType(f[2]), Family: headerFamily(f[3:])},
				Members: make(map[string]bool),
			}
		case "add":
			s := sets[f[1]]
			if s == nil {
				continue
			}
			noMatch := false
			for _, opt := range f[3:] {
				noMatch = noMatch || opt == "nomatch"
			}
			s.Members[memberKey(s.Type, f[2], noMatch)] = true
		}
	}
	return sets
}

// memberKey is the canonical form of a member, as ipset save prints it:
// addresses in their shortest form, host routes without a prefix length,
// prefixes masked, ports with a lower-case protocol (tcp when none is given).
func memberKey(t SetType, entry string, noMatch bool) string {
	// Most members are a dotted IPv4 address: netip parses only the
	// canonical form of one, so it is its own key (and no string is made).
	if !noMatch && strings.IndexAny(entry, ",/:") < 0 {
		if a, err := netip.ParseAddr(entry); err == nil && a.Is4() {
			return entry
		}
	}
	parts := strings.Split(entry, ",")
	parts[0] = canonicalAddr(parts[0])
	if t == HashIPPort && len(parts) == 2 {
		port := strings.ToLower(parts[1])
		if !strings.Contains(port, ":") {
			port = "tcp:" + port
		}
		parts[1] = port
	}
	key := strings.Join(parts, ",")
	if noMatch {
		key += " nomatch"
	}
	return key
}

func canonicalAddr(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		if p.IsSingleIP() {
			return p.Addr().String()
		}
		return p.String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return s
}
