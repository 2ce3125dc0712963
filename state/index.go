package state

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

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

// EncodeIndex renders idx in its stored form.
func EncodeIndex(idx *node.Index) []byte {
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
	pos := map[node.Membership]int{}
	var pods strings.Builder
	for _, k := range keys {
		pods.WriteString("pod " + k)
		for _, m := range idx.Pods[k] {
			i, ok := pos[m]
			if !ok {
				i = len(pos)
				pos[m] = i
				fmt.Fprintf(&b, "m %d %s", int(m.Family), m.Set)
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
func DecodeIndex(data []byte, only string) (*node.Index, error) {
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
	idx := &node.Index{Version: v, Isolated: iso[1:], Pods: map[string][]node.Membership{}}
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

func resolveRefs(table []string, refs string) ([]node.Membership, error) {
	fields := strings.Fields(refs)
	out := make([]node.Membership, 0, len(fields))
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
		m := node.Membership{Family: ipt.Family(fam), Set: parts[1]}
		if len(parts) == 3 {
			m.Suffix = parts[2]
		}
		out = append(out, m)
	}
	return out, nil
}
