package ipt

import (
	"sort"
	"strings"
)

// savedTable is one table as iptables-save prints it.
type savedTable struct {
	Declared map[string]bool     // every chain, built-in or not
	Rules    map[string][]string // chain -> its "-A CHAIN ..." lines, in order
}

// parseSave parses `iptables-save -t filter` (or `iptables -S CHAIN`) output.
func parseSave(out string) *savedTable {
	t := &savedTable{Declared: make(map[string]bool), Rules: make(map[string][]string)}
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			t.Declared[name] = true
		case strings.HasPrefix(line, "-N "):
			t.Declared[strings.TrimSpace(line[3:])] = true
		case strings.HasPrefix(line, "-A "):
			chain, _, _ := strings.Cut(line[3:], " ")
			t.Rules[chain] = append(t.Rules[chain], line)
		}
	}
	return t
}

// ownedChains returns the declared chains of t that are ours, sorted.
func (t *savedTable) ownedChains() []string {
	var names []string
	for n := range t.Declared {
		if Owned(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// ownedHooks returns the rules of the built-in chains that jump or go to one
// of our chains, as "-A CHAIN ..." lines; when only is not nil, just those
// whose target is in only.
func (t *savedTable) ownedHooks(only map[string]bool) []string {
	var hooks []string
	for _, c := range builtinChains {
		for _, line := range t.Rules[string(c)] {
			target := ruleTarget(line)
			if Owned(target) && (only == nil || only[target]) {
				hooks = append(hooks, line)
			}
		}
	}
	return hooks
}

// ruleTarget returns the -j/-g target of a saved rule line, or "".
func ruleTarget(line string) string {
	words := splitSaveLine(line)
	for i := 0; i+1 < len(words); i++ {
		switch words[i] {
		case "--comment":
			i++ // the comment itself could read "-j"
		case "-j", "-g":
			return words[i+1]
		}
	}
	return ""
}

// splitSaveLine splits a line of iptables-save output into words, undoing
// the double quotes and backslash escapes of QuoteSave.
func splitSaveLine(line string) []string {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case c == ' ' && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
			}
			inWord = false
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// asDelete turns a saved "-A CHAIN spec" line into "-D CHAIN spec".
func asDelete(line string) string { return "-D" + strings.TrimPrefix(line, "-A") }
