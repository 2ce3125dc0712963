package ipt

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseRule reads one `-A CHAIN ...` line of iptables-save back into the
// typed rule it renders from (RenderRule(chain, rule) prints line again):
// the matches and targets netpol writes (-p, set, tcp/udp/sctp --dport,
// multiport --dports, physdev --physdev-is-bridged, conntrack --ctstate,
// mark --mark, bpf --bytecode of SameAddress, limit, comment; -j/-g, MARK
// --set-xmark, NFLOG). Anything else is an error naming the word, so a rule
// that netpol did not write is never taken for one it did.
func ParseRule(line string) (chain string, r Rule, err error) {
	w := splitSaveLine(line)
	if len(w) < 2 || w[0] != "-A" {
		return "", Rule{}, fmt.Errorf("rule %q: want -A CHAIN ...", line)
	}
	chain = w[1]
	var proto Protocol
	for i := 2; i < len(w); i++ {
		next := func() (string, error) {
			if i+1 >= len(w) {
				return "", fmt.Errorf("rule %q: %s without a value", line, w[i])
			}
			i++
			return w[i], nil
		}
		var v string
		switch w[i] {
		case "-p":
			if v, err = next(); err == nil {
				proto = Protocol(v)
				r.Matches = append(r.Matches, proto)
			}
		case "-m":
			if v, err = next(); err == nil {
				var m Match
				m, i, err = parseMatch(w, i, v, proto)
				if m != nil {
					r.Matches = append(r.Matches, m)
				} else if err == nil && v == "comment" {
					if i+2 < len(w) && w[i+1] == "--comment" {
						r.Comment, i = w[i+2], i+2
					} else {
						err = fmt.Errorf("comment without --comment")
					}
				}
			}
		case "-j", "-g":
			r.Verdict.Goto = w[i] == "-g"
			if v, err = next(); err == nil {
				r.Verdict.Target = Target(v)
				i, err = parseTargetOptions(w, i, &r.Verdict)
			}
		default:
			err = fmt.Errorf("unknown option %q", w[i])
		}
		if err != nil {
			return "", Rule{}, fmt.Errorf("rule %q: %w", line, err)
		}
	}
	return chain, r, nil
}

// parseMatch reads the options of match module mod, which starts after
// w[i]; it returns the match (nil for a comment, which the caller reads)
// and the index of its last word.
func parseMatch(w []string, i int, mod string, proto Protocol) (Match, int, error) {
	opt := func(name string) (string, bool) {
		if i+2 < len(w) && w[i+1] == name {
			return w[i+2], true
		}
		return "", false
	}
	switch mod {
	case "comment":
		return nil, i, nil
	case "set":
		if i+3 < len(w) && w[i+1] == "--match-set" {
			return SetMatch{Set: w[i+2], Dir: Dir(w[i+3])}, i + 3, nil
		}
	case "tcp", "udp", "sctp":
		if v, ok := opt("--dport"); ok {
			r, err := parsePortRange(v)
			return DPorts{Proto: Protocol(mod), Ports: []PortRange{r}}, i + 2, err
		}
	case "multiport":
		if v, ok := opt("--dports"); ok {
			m := DPorts{Proto: proto}
			for _, p := range strings.Split(v, ",") {
				r, err := parsePortRange(p)
				if err != nil {
					return nil, i, err
				}
				m.Ports = append(m.Ports, r)
			}
			return m, i + 2, nil
		}
	case "physdev":
		if i+1 < len(w) && w[i+1] == "--physdev-is-bridged" {
			return PhysdevBridged{}, i + 1, nil
		}
	case "conntrack":
		if v, ok := opt("--ctstate"); ok {
			return CTState(strings.Split(v, ",")), i + 2, nil
		}
	case "mark":
		if v, ok := opt("--mark"); ok {
			return Mark(v), i + 2, nil
		}
	case "bpf":
		if v, ok := opt("--bytecode"); ok {
			for f, prog := range sameAddressBPF {
				if prog == v {
					return SameAddress{Family: f}, i + 2, nil
				}
			}
			return nil, i, fmt.Errorf("bpf program %q is not netpol's", v)
		}
	case "limit":
		return parseLimit(w, i)
	}
	return nil, i, fmt.Errorf("match -m %s: options not netpol's", mod)
}

// parseLimit reads `-m limit --limit N/UNIT [--limit-burst B]`.
func parseLimit(w []string, i int) (Match, int, error) {
	if i+2 >= len(w) || w[i+1] != "--limit" {
		return nil, i, fmt.Errorf("limit without --limit")
	}
	n, unit, _ := strings.Cut(w[i+2], "/")
	per, err := strconv.Atoi(n)
	if err != nil {
		return nil, i, fmt.Errorf("limit %q: %w", w[i+2], err)
	}
	if unit != "sec" && unit != "second" {
		per = 1 // slower than one a second: a rate netpol does not write
	}
	m := Limit{PerSecond: per, Burst: 5}
	i += 2
	if i+2 < len(w) && w[i+1] == "--limit-burst" {
		if m.Burst, err = strconv.Atoi(w[i+2]); err != nil {
			return nil, i, fmt.Errorf("limit-burst %q: %w", w[i+2], err)
		}
		i += 2
	}
	return m, i, nil
}

// parseTargetOptions reads the options of the target at w[i] into v.
func parseTargetOptions(w []string, i int, v *Verdict) (int, error) {
	switch v.Target {
	case MarkTarget:
		if i+2 < len(w) && w[i+1] == "--set-xmark" {
			v.SetMark = w[i+2]
			return i + 2, nil
		}
		return i, fmt.Errorf("MARK without --set-xmark")
	case NFLOGTarget:
		v.Log = &Log{}
		for i+2 < len(w) {
			switch w[i+1] {
			case "--nflog-prefix":
				v.Log.Prefix = w[i+2]
			case "--nflog-group":
				g, err := strconv.ParseUint(w[i+2], 10, 16)
				if err != nil {
					return i, fmt.Errorf("nflog-group %q: %w", w[i+2], err)
				}
				v.Log.Group = uint16(g)
			default:
				return i, fmt.Errorf("NFLOG option %q is not netpol's", w[i+1])
			}
			i += 2
		}
	}
	return i, nil
}

func parsePortRange(s string) (PortRange, error) {
	first, last, isRange := strings.Cut(s, ":")
	a, err := strconv.ParseUint(first, 10, 16)
	if err != nil {
		return PortRange{}, fmt.Errorf("port %q: %w", s, err)
	}
	r := PortRange{First: int32(a)}
	if isRange {
		b, err := strconv.ParseUint(last, 10, 16)
		if err != nil {
			return PortRange{}, fmt.Errorf("port %q: %w", s, err)
		}
		r.Last = int32(b)
	}
	return r, nil
}
