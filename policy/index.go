package policy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/netpol/netpol/ipt"
)

// Entries returns the set entries the addresses of attachment a belong in,
// according to idx. A pod the index knows gets its memberships. A pod it does
// not know is denied (DENY set) when its namespace has a policy, or when
// there is no index at all (the agent has not synced: nothing is known, so
// fail closed); otherwise it is left unrestricted and belongs to no peer set
// until the agent learns its labels.
func (idx *Index) Entries(a *Attachment) []ipt.Entry {
	var out []ipt.Entry
	for _, ip := range a.IPs {
		fam, ok := ipFamily(ip)
		if !ok {
			continue
		}
		if ms, known := idx.pod(a.PodKey()); known {
			for _, m := range ms {
				if ipt.Family(m.Family) == fam {
					out = append(out, ipt.Entry{Set: m.Set, Value: ip + m.Suffix})
				}
			}
			continue
		}
		if idx == nil || idx.isIsolated(a.Namespace) {
			out = append(out, ipt.Entry{Set: DenySet(fam), Value: ip})
		}
	}
	return out
}

// Known reports whether the index knows the attachment's pod.
func (idx *Index) Known(a *Attachment) bool {
	_, ok := idx.pod(a.PodKey())
	return ok
}

// IsIsolated reports whether namespace ns has a policy, or whether there is no
// index to tell.
func (idx *Index) IsIsolated(ns string) bool { return idx == nil || idx.isIsolated(ns) }

func (idx *Index) pod(key string) ([]Membership, bool) {
	if idx == nil {
		return nil, false
	}
	ms, ok := idx.Pods[key]
	return ms, ok
}

func (idx *Index) isIsolated(ns string) bool {
	i := sort.SearchStrings(idx.Isolated, ns)
	return i < len(idx.Isolated) && idx.Isolated[i] == ns
}

// Release returns the entries to remove when attachment gone is deleted:
// everything its addresses may have been put in (its memberships and the
// DENY set), except entries still owed to one of the remaining attachments
// (two pods may have had the same address).
func (idx *Index) Release(gone *Attachment, remaining []Attachment) []ipt.Entry {
	keep := map[ipt.Entry]bool{}
	for i := range remaining {
		for _, e := range idx.Entries(&remaining[i]) {
			keep[e] = true
		}
	}
	candidates := idx.Entries(gone)
	for _, ip := range gone.IPs {
		if fam, ok := ipFamily(ip); ok {
			candidates = append(candidates, ipt.Entry{Set: DenySet(fam), Value: ip})
		}
	}
	var out []ipt.Entry
	seen := map[ipt.Entry]bool{}
	for _, e := range candidates {
		if !keep[e] && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// The index is stored as lines of text, the way ipset save writes sets:
//
//	netpol-index 1
//	isolated default prod
//	m 4 NETPOL4-GI-YZ3YLLTHPD45N4DC
//	m 4 NETPOL4-N-3J7Q2WJ4KQ3C7F2A ,tcp:6379
//	pod default/db 0 1
//
// Every distinct membership is listed once ("m FAMILY SET [SUFFIX]",
// numbered from 0 in order) and each pod names its memberships by number.
// None of the fields can hold a space (they are validated Kubernetes names,
// hashed set names and ",proto:port" suffixes), so a pod can be looked up by
// reading lines, and ADD parses only the lines it needs, whatever the number
// of pods on the node.
const indexMagic = "netpol-index"

// Encode renders the index in its stored form.
func (idx *Index) Encode() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d\n", indexMagic, idx.Version)
	b.WriteString("isolated")
	for _, ns := range idx.Isolated {
		b.WriteString(" " + ns)
	}
	b.WriteString("\n")
	keys := make([]string, 0, len(idx.Pods))
	for k := range idx.Pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pos := map[Membership]int{}
	var pods strings.Builder
	for _, k := range keys {
		pods.WriteString("pod " + k)
		for _, m := range idx.Pods[k] {
			i, ok := pos[m]
			if !ok {
				i = len(pos)
				pos[m] = i
				fmt.Fprintf(&b, "m %d %s", m.Family, m.Set)
				if m.Suffix != "" {
					b.WriteString(" " + m.Suffix)
				}
				b.WriteString("\n")
			}
			pods.WriteString(" " + strconv.Itoa(i))
		}
		pods.WriteString("\n")
	}
	b.WriteString(pods.String())
	return []byte(b.String())
}

// DecodeIndex parses a stored index. With only set to "namespace/name", it
// keeps that pod alone in Pods (absent if the index does not know it) and
// skips the other pods' lines; with only empty it keeps every pod.
func DecodeIndex(data []byte, only string) (*Index, error) {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("index: truncated")
	}
	head := strings.Fields(lines[0])
	if len(head) != 2 || head[0] != indexMagic {
		return nil, fmt.Errorf("index: line 1: want %q VERSION, got %q", indexMagic, lines[0])
	}
	v, err := strconv.Atoi(head[1])
	if err != nil {
		return nil, fmt.Errorf("index: line 1: version %q", head[1])
	}
	iso := strings.Fields(lines[1])
	if len(iso) == 0 || iso[0] != "isolated" {
		return nil, fmt.Errorf("index: line 2: want isolated NAMESPACES, got %q", lines[1])
	}
	idx := &Index{Version: v, Isolated: iso[1:], Pods: map[string][]Membership{}}
	var table []string // membership lines, parsed only when referenced
	for n, line := range lines[2:] {
		switch {
		case strings.HasPrefix(line, "m "):
			table = append(table, line[2:])
		case strings.HasPrefix(line, "pod "):
			key, refs, _ := strings.Cut(line[4:], " ")
			if only != "" && key != only {
				continue
			}
			ms, err := resolveRefs(table, refs)
			if err != nil {
				return nil, fmt.Errorf("index: line %d: pod %s: %w", n+3, key, err)
			}
			idx.Pods[key] = ms
		default:
			return nil, fmt.Errorf("index: line %d: unexpected %q", n+3, line)
		}
	}
	return idx, nil
}

func resolveRefs(table []string, refs string) ([]Membership, error) {
	fields := strings.Fields(refs)
	out := make([]Membership, 0, len(fields))
	for _, f := range fields {
		i, err := strconv.Atoi(f)
		if err != nil || i < 0 || i >= len(table) {
			return nil, fmt.Errorf("membership %q out of range", f)
		}
		parts := strings.Fields(table[i])
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("membership %d: %q: want FAMILY SET [SUFFIX]", i, table[i])
		}
		fam, err := strconv.Atoi(parts[0])
		if err != nil {
			return nil, fmt.Errorf("membership %d: family %q", i, parts[0])
		}
		m := Membership{Family: fam, Set: parts[1]}
		if len(parts) == 3 {
			m.Suffix = parts[2]
		}
		out = append(out, m)
	}
	return out, nil
}
