package agent

import (
	"context"
	"net/netip"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
)

// apply makes the kernel hold rulesets, or, while IPv6 is off, the IPv4
// ones only, and returns the families it left out.
//
// IPv6 is turned off when a sync fails, ip6tables is unusable
// (Kernel.Usable) and no local pod has an IPv6 address: the node then runs
// IPv4 with a warning instead of failing every sync. It is turned on again
// as soon as ip6tables works or a local pod has an IPv6 address; in the
// latter case, with ip6tables still unusable, the sync fails (closed) as
// for any other error. Each change of state is logged once.
func (a *Agent) apply(ctx context.Context, rulesets []ipt.Ruleset, atts []policy.Attachment) ([]ipt.Family, error) {
	v6Pods := hasIPv6(atts)
	if a.ipv6Off {
		if v6Pods {
			a.ipv6Off = false
			a.Log.Warn("enforcing IPv6 again: a local pod has an IPv6 address")
		} else if err := a.Kernel.Usable(ctx, ipt.IPv6); err == nil {
			a.ipv6Off = false
			a.Log.Info("enforcing IPv6 again: ip6tables works")
		}
	}
	if !a.ipv6Off {
		err := a.Kernel.Apply(ctx, rulesets)
		if err == nil || v6Pods || !hasFamily(rulesets, ipt.IPv6) {
			return nil, err
		}
		uerr := a.Kernel.Usable(ctx, ipt.IPv6)
		if uerr == nil {
			return nil, err
		}
		a.ipv6Off = true
		a.Log.Warn("ip6tables is unusable and no local pod has an IPv6 address: enforcing IPv4 only "+
			"(netpol_family_disabled{family=\"ipv6\"} 1); IPv6 traffic is not filtered",
			"err", uerr, "sync_err", err)
	}
	v4 := make([]ipt.Ruleset, 0, len(rulesets))
	for _, rs := range rulesets {
		if rs.Family != ipt.IPv6 {
			v4 = append(v4, rs)
		}
	}
	if err := a.Kernel.Apply(ctx, v4); err != nil {
		return nil, err
	}
	return []ipt.Family{ipt.IPv6}, nil
}

// hasIPv6 reports whether any local pod has an IPv6 address.
func hasIPv6(atts []policy.Attachment) bool {
	for _, att := range atts {
		for _, ip := range att.IPs {
			addr, err := netip.ParseAddr(ip)
			if p, perr := netip.ParsePrefix(ip); perr == nil {
				addr, err = p.Addr(), nil
			}
			if err == nil && addr.Is6() && !addr.Is4In6() {
				return true
			}
		}
	}
	return false
}

func hasFamily(rulesets []ipt.Ruleset, f ipt.Family) bool {
	for _, rs := range rulesets {
		if rs.Family == f {
			return true
		}
	}
	return false
}
