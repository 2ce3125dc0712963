package policy

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/netpol/netpol/ipt"
)

// Packet is the first packet of a connection as it crosses FORWARD.
type Packet struct {
	Src, Dst string
	Protocol string // tcp, udp, sctp
	DPort    int32
	Bridged  bool // same-node traffic through the bridge (the physdev path)
}

// TraceResult is what a packet met in the compiled ruleset.
type TraceResult struct {
	Allowed bool
	// Rules lists every rule that matched, in order, rendered as
	// iptables-save prints it, so explain shows the rule that decided.
	Rules []string
	// Walked lists every rule the packet was tested against, matched or
	// not, in order: what the packet paid for.
	Walked []RuleRef
	// Logged lists the NFLOG prefixes of the log rules the packet met.
	Logged []string
}

// RuleRef names one rule of a ruleset that a packet was tested against:
// its chain, its 0-based index, whether it matched, and how many set
// lookups testing it took (its set matches up to the first match that
// failed, as netfilter stops there).
type RuleRef struct {
	Chain   string
	Index   int
	Matched bool
	Lookups int
}

// Trace walks p through the compiled ruleset of its family the way netfilter
// does (jump, goto, RETURN, DROP, MARK, NFLOG, limit, set lookups): it answers from the
// same ruleset that is applied to the kernel. It knows exactly the matches
// the compiler emits and reports any other as an error.
func Trace(c *Compiled, p Packet) (TraceResult, error) {
	fam, ok := ipFamily(p.Src)
	if !ok {
		return TraceResult{}, fmt.Errorf("source %q is not an IP address", p.Src)
	}
	if dfam, ok := ipFamily(p.Dst); !ok || dfam != fam {
		return TraceResult{}, fmt.Errorf("destination %q is not an %s address like source %q", p.Dst, fam, p.Src)
	}
	return TraceRuleset(c.Ruleset(fam), p)
}

// TraceRuleset is Trace through rs, a ruleset of p's family: compiled, or
// read back from the kernel (ipt.Runner.ReadLive, explain --live).
func TraceRuleset(rs *ipt.Ruleset, p Packet) (TraceResult, error) {
	if rs == nil {
		return TraceResult{}, fmt.Errorf("no ruleset for %s", p.Src)
	}
	chains := map[string]ipt.Chain{}
	for _, ch := range rs.Chains {
		chains[ch.Name] = ch
	}
	sets := map[string]*ipt.Set{}
	for i := range rs.Sets {
		sets[rs.Sets[i].Name] = &rs.Sets[i]
	}
	var res TraceResult
	var mark uint32 // the packet's mark: 0 as it enters FORWARD
	type frame struct {
		chain string
		pos   int
	}
	stack := []frame{{ChainForward, 0}}
	for steps := 0; len(stack) > 0; steps++ {
		if steps > 100000 {
			return res, fmt.Errorf("trace did not terminate")
		}
		top := &stack[len(stack)-1]
		ch, ok := chains[top.chain]
		if !ok {
			return res, fmt.Errorf("jump to missing chain %s", top.chain)
		}
		if top.pos >= len(ch.Rules) {
			stack = stack[:len(stack)-1]
			continue
		}
		r := ch.Rules[top.pos]
		hit, lookups, err := traceMatches(r.Matches, p, sets, mark)
		if err != nil {
			return res, fmt.Errorf("%s: %w", ipt.RenderRule(ch.Name, r), err)
		}
		res.Walked = append(res.Walked, RuleRef{Chain: ch.Name, Index: top.pos, Matched: hit, Lookups: lookups})
		top.pos++
		if !hit {
			continue
		}
		res.Rules = append(res.Rules, ipt.RenderRule(ch.Name, r))
		switch v := r.Verdict; v.Target {
		case ipt.Drop:
			return res, nil
		case ipt.Accept:
			res.Allowed = true
			return res, nil
		case ipt.Return:
			stack = stack[:len(stack)-1]
		case ipt.MarkTarget:
			value, mask, ok := ipt.Mark(v.SetMark).Bits()
			if !ok {
				return res, fmt.Errorf("%s: mark %q is not VALUE[/MASK]", ipt.RenderRule(ch.Name, r), v.SetMark)
			}
			mark = mark&^mask ^ value // --set-xmark: zero the mask's bits, then XOR
		case ipt.NFLOGTarget:
			res.Logged = append(res.Logged, v.Log.Prefix) // and on to the next rule
		default:
			if v.Goto {
				stack = stack[:len(stack)-1]
			}
			stack = append(stack, frame{string(v.Target), 0})
		}
	}
	res.Allowed = true
	return res, nil
}

// traceMatches reports whether every match of ms holds for p, and how many
// set lookups it took to find out.
func traceMatches(ms []ipt.Match, p Packet, sets map[string]*ipt.Set, mark uint32) (hit bool, lookups int, err error) {
	for _, m := range ms {
		ok := false
		switch m := m.(type) {
		case ipt.CTState:
			ok = false // the first packet of a connection is NEW
		case ipt.PhysdevBridged:
			ok = p.Bridged
		case ipt.SameAddress:
			ok = canonicalIP(p.Src) == canonicalIP(p.Dst)
		case ipt.Mark:
			value, mask, valid := m.Bits()
			if !valid {
				return false, lookups, fmt.Errorf("mark %q is not VALUE[/MASK]", string(m))
			}
			ok = mark&mask == value
		case ipt.Limit:
			ok = true // a trace is one packet: the bucket has a token
		case ipt.Protocol:
			ok = strings.EqualFold(string(m), p.Protocol)
		case ipt.DPorts:
			for _, r := range m.Ports {
				last := r.Last
				if last == 0 {
					last = r.First
				}
				ok = ok || (p.DPort >= r.First && p.DPort <= last)
			}
		case ipt.SetMatch:
			s := sets[m.Set]
			if s == nil {
				return false, lookups, fmt.Errorf("missing set %s", m.Set)
			}
			lookups++
			ok = inSet(s, m.Dir, p)
		default:
			return false, lookups, fmt.Errorf("unknown match %T", m)
		}
		if !ok {
			return false, lookups, nil
		}
	}
	return true, lookups, nil
}

// inSet answers a set lookup the way ipset does for the types we use.
func inSet(s *ipt.Set, dir ipt.Dir, p Packet) bool {
	addr := p.Src
	if strings.HasPrefix(string(dir), "dst") {
		addr = p.Dst
	}
	addr = canonicalIP(addr)
	switch s.Type {
	case ipt.HashIP:
		for _, m := range s.Members {
			if canonicalIP(m.Entry) == addr {
				return true
			}
		}
	case ipt.HashIPPort:
		want := addr + "," + strings.ToLower(p.Protocol) + ":" + strconv.Itoa(int(p.DPort))
		for _, m := range s.Members {
			if m.Entry == want {
				return true
			}
		}
	case ipt.HashNet:
		// the most specific matching prefix decides; nomatch entries exclude
		best, result := -1, false
		ip := net.ParseIP(addr)
		for _, m := range s.Members {
			if _, n, err := net.ParseCIDR(m.Entry); err == nil && n.Contains(ip) {
				if ones, _ := n.Mask.Size(); ones > best {
					best, result = ones, !m.NoMatch
				}
			}
		}
		return result
	}
	return false
}
