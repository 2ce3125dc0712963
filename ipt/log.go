package ipt

import (
	"fmt"
	"strconv"
	"strings"
)

// NFLOGTarget is the built-in target that copies a packet to a netlink log
// group (xt_NFLOG) and lets it go on to the next rule: it logs, it does not
// decide. A rule with it carries Verdict.Log.
const NFLOGTarget Target = "NFLOG"

// MaxLogPrefix is the longest NFLOG prefix: the kernel keeps 64 bytes with
// the terminating NUL.
const MaxLogPrefix = 63

// Log is the NFLOG part of a verdict: `-j NFLOG --nflog-prefix P
// --nflog-group G`. The prefix is made only of letters, digits, '_' and '-'
// (iptables-save prints it unquoted, and no user string can hide in it).
type Log struct {
	Group  uint16
	Prefix string
}

// NFLOG returns the verdict `-j NFLOG --nflog-prefix prefix --nflog-group group`.
func NFLOG(group uint16, prefix string) Verdict {
	return Verdict{Target: NFLOGTarget, Log: &Log{Group: group, Prefix: prefix}}
}

// args prints l as iptables-save does: the prefix first, then the group,
// each left out when empty or 0 (the kernel's defaults).
func (l *Log) args() []string {
	var out []string
	if l.Prefix != "" {
		out = append(out, "--nflog-prefix", QuoteSave(l.Prefix))
	}
	if l.Group != 0 {
		out = append(out, "--nflog-group", strconv.Itoa(int(l.Group)))
	}
	return out
}

func validateLog(l *Log) error {
	switch {
	case l == nil:
		return fmt.Errorf("%w: NFLOG without group and prefix", ErrInvalid)
	case len(l.Prefix) > MaxLogPrefix:
		return fmt.Errorf("%w: NFLOG prefix %q is %d bytes, longer than %d", ErrInvalid, l.Prefix, len(l.Prefix), MaxLogPrefix)
	case strings.Trim(l.Prefix, noQuote) != "":
		return fmt.Errorf("%w: NFLOG prefix %q has characters outside [A-Za-z0-9_-]", ErrInvalid, l.Prefix)
	}
	return nil
}

// Limit is `-m limit --limit R/sec --limit-burst B`: the rule matches at most
// PerSecond packets a second on average, Burst at once (a token bucket of
// the rule itself, xt_limit). Args prints it as iptables-save does: the
// kernel keeps the rate as a period in 1/10000 s, which is printed back in
// the largest unit that shows it (1/sec stays 1/sec, 3000/sec reads back as
// 3333/sec), and the burst is left out when it is the default 5.
type Limit struct {
	PerSecond int
	Burst     int
}

// limitScale is XT_LIMIT_SCALE: the kernel's periods are in 1/10000 s.
const limitScale = 10000

// MaxLimit is the highest rate and burst xt_limit accepts.
const MaxLimit = limitScale

func (m Limit) Args() []string {
	out := []string{"-m", "limit", "--limit", limitRate(m.PerSecond)}
	if m.Burst != 5 {
		out = append(out, "--limit-burst", strconv.Itoa(m.Burst))
	}
	return out
}

// limitRate is libxtables' print_rate of the period of perSecond.
func limitRate(perSecond int) string {
	if perSecond < 1 || perSecond > limitScale {
		return strconv.Itoa(perSecond) + "/sec" // Validate refuses it
	}
	period := uint64(limitScale / perSecond)
	units := []struct {
		name string
		mult uint64
	}{{"day", limitScale * 86400}, {"hour", limitScale * 3600}, {"min", limitScale * 60}, {"sec", limitScale}}
	i := 1
	for ; i < len(units); i++ {
		if period > units[i].mult || units[i].mult/period < units[i].mult%period {
			break
		}
	}
	return strconv.FormatUint(units[i-1].mult/period, 10) + "/" + units[i-1].name
}

func validateLimit(m Limit) error {
	if m.PerSecond < 1 || m.PerSecond > MaxLimit || m.Burst < 1 || m.Burst > MaxLimit {
		return fmt.Errorf("%w: limit %d/sec burst %d (each 1..%d)", ErrInvalid, m.PerSecond, m.Burst, MaxLimit)
	}
	return nil
}
