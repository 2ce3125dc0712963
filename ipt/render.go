package ipt

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxComment is the longest comment, in bytes, that survives a round trip
// through the kernel: longer comments are silently cut to this length by
// iptables-nft and rejected by iptables-legacy.
const MaxComment = 255

// RenderRule returns the rule r of chain as the `-A CHAIN ...` line exactly as
// iptables-save prints it, so that read-back compares byte for byte:
//
//	-A CHAIN -p PROTO <other matches in order> -m comment --comment C -j TARGET
//
// A Protocol match is hoisted to the front because iptables-save always prints
// `-p` first. The comment is sanitized and quoted like iptables-save does
// (see Comment). MARK prints as `-j MARK --set-xmark VALUE/MASK`, NFLOG as
// `-j NFLOG --nflog-prefix P --nflog-group G`.
func RenderRule(chain string, r Rule) string {
	var b strings.Builder
	b.WriteString("-A ")
	b.WriteString(chain)
	writeRuleSpec(&b, r)
	return b.String()
}

// writeRuleSpec writes everything after `-A CHAIN`, with a leading space.
func writeRuleSpec(b *strings.Builder, r Rule) {
	for _, m := range r.Matches {
		if _, ok := m.(Protocol); ok {
			writeArgs(b, m.Args())
		}
	}
	for _, m := range r.Matches {
		if _, ok := m.(Protocol); !ok && m != nil {
			writeArgs(b, m.Args())
		}
	}
	if c := SanitizeComment(r.Comment); c != "" {
		b.WriteString(" -m comment --comment ")
		b.WriteString(QuoteSave(c))
	}
	writeVerdict(b, r.Verdict)
}

func writeArgs(b *strings.Builder, args []string) {
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
}

func writeVerdict(b *strings.Builder, v Verdict) {
	if v.Target == "" {
		return
	}
	if v.Goto {
		b.WriteString(" -g ")
	} else {
		b.WriteString(" -j ")
	}
	b.WriteString(string(v.Target))
	if v.Target == MarkTarget {
		b.WriteString(" --set-xmark ")
		b.WriteString(canonicalXMark(v.SetMark))
	}
	if v.Target == NFLOGTarget && v.Log != nil {
		writeArgs(b, v.Log.args())
	}
}

// canonicalXMark prints VALUE[/MASK] as iptables-save prints --set-xmark:
// hexadecimal, always with a mask (default 0xffffffff).
func canonicalXMark(s string) string {
	v, m, ok := parseMark(s)
	if !ok {
		return s
	}
	return "0x" + strconv.FormatUint(v, 16) + "/0x" + strconv.FormatUint(m, 16)
}

// SanitizeComment makes s safe and stable as a rule comment: invalid UTF-8
// and control characters (newlines, tabs, ...) are removed and the result is
// cut to at most MaxComment bytes on a character boundary.
func SanitizeComment(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) <= MaxComment {
		return s
	}
	cut := MaxComment
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// noQuote is the set of characters iptables-save prints without quotes.
const noQuote = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// QuoteSave quotes s the way iptables-save (xtables_save_string) does: a
// non-empty string made only of letters, digits, '_' and '-' is printed as
// is; anything else is put in double quotes, with each double quote,
// backslash and single quote escaped by a backslash. iptables-restore reads that form back to s.
func QuoteSave(s string) string {
	if s != "" && strings.Trim(s, noQuote) == "" {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// renderTransaction returns the input of `iptables-restore --noflush` that
// makes the filter table hold exactly the chains of rs, runs the extra lines
// (hook -D/-I), and deletes the stale chains:
//
//	*filter
//	:NETPOL-A - [0:0]     (every chain of rs: created, or flushed if it exists)
//	:NETPOL-OLD - [0:0]   (every stale chain: flushed so that -X succeeds,
//	                       and created if it is already gone, so -X never fails)
//	-A NETPOL-A ...
//	<extra>
//	-X NETPOL-OLD
//	COMMIT
//
// Stale names without the Prefix, and stale names that rs still declares, are
// refused (left out).
func renderTransaction(rs *Ruleset, stale []string, extra []string) []byte {
	var b strings.Builder
	b.WriteString("*filter\n")
	desired := make(map[string]bool, len(rs.Chains))
	for _, c := range rs.Chains {
		desired[c.Name] = true
		b.WriteString(":" + c.Name + " - [0:0]\n")
	}
	drop := staleToDrop(stale, desired)
	for _, name := range drop {
		b.WriteString(":" + name + " - [0:0]\n")
	}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			b.WriteString(RenderRule(c.Name, r))
			b.WriteByte('\n')
		}
	}
	for _, l := range extra {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for _, name := range drop {
		b.WriteString("-X " + name + "\n")
	}
	b.WriteString("COMMIT\n")
	return []byte(b.String())
}

// staleToDrop filters stale down to owned, well-formed names that are not
// desired, without duplicates, in their given order.
func staleToDrop(stale []string, desired map[string]bool) []string {
	seen := make(map[string]bool, len(stale))
	var out []string
	for _, name := range stale {
		if !Owned(name) || desired[name] || seen[name] || checkName(name, MaxChainName) != nil {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	return out
}
