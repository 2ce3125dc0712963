package state

import (
	"bytes"
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
	// Over the bytes, so that only what is kept is copied: ADD keeps one
	// pod of an index of ~35 KB (issue 10's world).
	rest, done := bytes.TrimSuffix(data, []byte("\n")), false
	next := func() ([]byte, bool) { // the lines of rest, as bytes.Split gives them
		if done {
			return nil, false
		}
		line, after, found := bytes.Cut(rest, []byte("\n"))
		rest, done = after, !found
		return line, true
	}
	first, _ := next()
	second, ok := next()
	if !ok {
		return nil, fmt.Errorf("index: truncated")
	}
	head := strings.Fields(string(first))
	if len(head) != 2 || head[0] != indexMagic {
		return nil, fmt.Errorf("index: line 1: want %q VERSION, got %q", indexMagic, first)
	}
	v, err := strconv.Atoi(head[1])
	if err != nil {
		return nil, fmt.Errorf("index: line 1: version %q", head[1])
	}
	iso := strings.Fields(string(second))
	if len(iso) == 0 || iso[0] != "isolated" {
		return nil, fmt.Errorf("index: line 2: want isolated NAMESPACES, got %q", second)
	}
	idx := &node.Index{Version: v, Isolated: iso[1:], Pods: map[string][]node.Membership{}}
	table := make([][]byte, 0, 1+bytes.Count(rest, []byte("\nm "))) // membership lines, parsed only when referenced
	for n := 3; ; n++ {
		line, ok := next()
		if !ok {
			break
		}
		switch {
		case bytes.HasPrefix(line, []byte("m ")):
			table = append(table, line[2:])
		case bytes.HasPrefix(line, []byte("pod ")):
			key, refs, _ := bytes.Cut(line[4:], []byte(" "))
			if only != "" && string(key) != only {
				continue
			}
			ms, err := resolveRefs(table, string(refs))
			if err != nil {
				return nil, fmt.Errorf("index: line %d: pod %s: %w", n, key, err)
			}
			idx.Pods[string(key)] = ms
		default:
			return nil, fmt.Errorf("index: line %d: unexpected %q", n, line)
		}
	}
	return idx, nil
}

func resolveRefs(table [][]byte, refs string) ([]node.Membership, error) {
	fields := strings.Fields(refs)
	out := make([]node.Membership, 0, len(fields))
	for _, f := range fields {
		i, err := strconv.Atoi(f)
		if err != nil || i < 0 || i >= len(table) {
			return nil, fmt.Errorf("membership %q out of range", f)
		}
		parts := strings.Fields(string(table[i]))
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
