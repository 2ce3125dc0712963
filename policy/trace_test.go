package policy

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/netpol/netpol/ipt"
)

// packet is what the trace interpreter needs of a new connection's first
// packet as it crosses FORWARD.
type packet struct {
	src, dst string
	proto    string // tcp, udp, sctp
	dport    int32
	bridged  bool
}

// trace walks p through the compiled ruleset of its family the way netfilter
// does (jump, goto, RETURN, DROP, MARK, set lookups) and reports whether it
// leaves our chains without being dropped. It understands exactly the match
// types the compiler emits; anything else fails the test.
func trace(t *testing.T, c *Compiled, p packet) bool {
	t.Helper()
	fam, _ := ipFamily(p.src)
	rs := c.Ruleset(fam)
	chains := map[string]ipt.Chain{}
	for _, ch := range rs.Chains {
		chains[ch.Name] = ch
	}
	sets := map[string]ipt.Set{}
	for _, s := range rs.Sets {
		sets[s.Name] = s
	}
	mark := false
	type frame struct {
		chain string
		pos   int
	}
	stack := []frame{{ChainForward, 0}}
	for steps := 0; steps < 10000 && len(stack) > 0; steps++ {
		top := &stack[len(stack)-1]
		ch, ok := chains[top.chain]
		if !ok {
			t.Fatalf("jump to missing chain %s", top.chain)
		}
		if top.pos >= len(ch.Rules) {
			stack = stack[:len(stack)-1]
			continue
		}
		r := ch.Rules[top.pos]
		top.pos++
		if !matches(t, r.Matches, p, sets, mark) {
			continue
		}
		switch v := r.Verdict; v.Target {
		case "DROP":
			return false
		case "ACCEPT":
			return true
		case "RETURN":
			stack = stack[:len(stack)-1]
		case "MARK":
			mark = v.SetMark == AllowMark
		default:
			if v.Goto {
				stack = stack[:len(stack)-1]
			}
			stack = append(stack, frame{v.Target, 0})
		}
	}
	if len(stack) > 0 {
		t.Fatal("trace did not terminate")
	}
	return true
}

func matches(t *testing.T, ms []ipt.Match, p packet, sets map[string]ipt.Set, mark bool) bool {
	for _, m := range ms {
		ok := false
		switch m := m.(type) {
		case ipt.CTState:
			ok = false // the first packet of a connection is NEW
		case ipt.PhysdevBridged:
			ok = p.bridged
		case ipt.Mark:
			ok = mark
		case ipt.Protocol:
			ok = string(m) == p.proto
		case ipt.DPorts:
			for _, r := range m.Ports {
				last := r.Last
				if last == 0 {
					last = r.First
				}
				ok = ok || (p.dport >= r.First && p.dport <= last)
			}
		case ipt.SetMatch:
			s, found := sets[m.Set]
			if !found {
				t.Fatalf("rule references missing set %s", m.Set)
			}
			ok = inSet(s, m.Dir, p)
		default:
			t.Fatalf("trace does not know match %T", m)
		}
		if !ok {
			return false
		}
	}
	return true
}

func inSet(s ipt.Set, dir ipt.Dir, p packet) bool {
	addr := p.src
	if strings.HasPrefix(string(dir), "dst") {
		addr = p.dst
	}
	switch s.Type {
	case ipt.HashIP:
		for _, m := range s.Members {
			if m.Entry == addr {
				return true
			}
		}
	case ipt.HashIPPort:
		want := addr + "," + p.proto + ":" + strconv.Itoa(int(p.dport))
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
			_, n, err := net.ParseCIDR(m.Entry)
			if err != nil {
				panic(fmt.Sprintf("bad hash:net entry %q", m.Entry))
			}
			if ones, _ := n.Mask.Size(); n.Contains(ip) && ones > best {
				best, result = ones, !m.NoMatch
			}
		}
		return result
	}
	return false
}
