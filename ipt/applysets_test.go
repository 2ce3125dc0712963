package ipt

import "testing"

// TestNetlinkable: only entries that netlink encodes as exactly the member
// ipset restore would add go over netlink; the others make memberDiff fall
// back to restore.
func TestNetlinkable(t *testing.T) {
	for _, c := range []struct {
		set  Set
		key  string
		want bool
	}{
		{Set{Type: HashIP, Family: IPv4}, "10.0.0.1", true},
		{Set{Type: HashIP, Family: IPv6}, "fd00::1", true},
		{Set{Type: HashIP, Family: IPv4}, "fd00::1", false},         // another family
		{Set{Type: HashIP, Family: IPv6}, "10.0.0.1", false},        // another family
		{Set{Type: HashIP, Family: IPv6}, "::ffff:10.0.0.1", false}, // sent as IPv4
		{Set{Type: HashIP, Family: IPv4}, "10.0.0.0/30", false},     // a range in hash:ip
		{Set{Type: HashNet, Family: IPv4}, "10.1.0.0/16", true},
		{Set{Type: HashNet, Family: IPv4}, "10.9.9.9", true},   // a host route
		{Set{Type: HashNet, Family: IPv4}, "0.0.0.0/0", false}, // length 0 is left out
		{Set{Type: HashNet, Family: IPv4}, "10.1.2.0/24 nomatch", false},
		{Set{Type: HashIPPort, Family: IPv4}, "10.0.0.1,tcp:80", true},
		{Set{Type: HashIPPort, Family: IPv4}, "10.0.0.1,icmp:8", false}, // no protocol number for it
	} {
		if got := netlinkable(c.set, c.key); got != c.want {
			t.Errorf("netlinkable(%s %s, %q) = %v, want %v", c.set.Type, c.set.Family, c.key, got, c.want)
		}
	}
}

// TestMemberDiffFallsBack: memberDiff takes the netlink path only when
// every changed set exists as desired and was read.
func TestMemberDiffFallsBack(t *testing.T) {
	s := Set{Name: "NETPOL4-A", Type: HashIP, Family: IPv4, Members: []Member{{Entry: "10.0.0.1"}, {Entry: "10.0.0.3"}}}
	had := map[string]*savedSet{"NETPOL4-A": {SetInfo: SetInfo{Type: HashIP, Family: IPv4},
		Members: map[string]bool{"10.0.0.1": true, "10.0.0.2": true}}}
	same := map[string]SetInfo{"NETPOL4-A": {Type: HashIP, Family: IPv4}}
	adds, dels, ok := memberDiff([]Set{s}, same, had)
	if !ok || len(adds) != 1 || adds[0].Value != "10.0.0.3" || len(dels) != 1 || dels[0].Value != "10.0.0.2" {
		t.Errorf("memberDiff = %v, %v, %v; want +10.0.0.3 -10.0.0.2", adds, dels, ok)
	}
	for name, c := range map[string]struct {
		existing map[string]SetInfo
		before   map[string]*savedSet
	}{
		"missing":      {map[string]SetInfo{}, had},
		"other type":   {map[string]SetInfo{"NETPOL4-A": {Type: HashNet, Family: IPv4}}, had},
		"other family": {map[string]SetInfo{"NETPOL4-A": {Type: HashIP, Family: IPv6}}, had},
		"not read":     {same, map[string]*savedSet{}},
	} {
		if _, _, ok := memberDiff([]Set{s}, c.existing, c.before); ok {
			t.Errorf("%s: memberDiff took the netlink path", name)
		}
	}
}

// TestNetlinkEntryRefusesWhatItCannotSend: an IPv4-mapped IPv6 address
// (it would go out as IPv4) and a prefix of length 0 (it would go out
// without its length, a host to the kernel) are refused, so that AddEntries
// and DelEntries fall back to `ipset restore` for them.
func TestNetlinkEntryRefusesWhatItCannotSend(t *testing.T) {
	for _, v := range []string{"::ffff:10.0.0.1", "::ffff:10.0.0.0/120", "0.0.0.0/0", "::/0"} {
		if _, ok := netlinkEntry(v); ok {
			t.Errorf("netlinkEntry(%q) encoded it", v)
		}
	}
	for _, v := range []string{"10.0.0.1", "10.0.0.0/1", "fd00::/8", "10.0.0.1,tcp:80"} {
		if _, ok := netlinkEntry(v); !ok {
			t.Errorf("netlinkEntry(%q) refused it", v)
		}
	}
}
