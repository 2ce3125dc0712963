package ipt

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTempSetName(t *testing.T) {
	for _, name := range []string{"NETPOL4-P-ABCDEFGHIJKLMNOP", "NETPOLx", strings.Repeat("N", 31)} {
		tmp := TempSetName(name)
		if len(tmp) != MaxSetName || !Owned(tmp) || !strings.HasPrefix(tmp, "NETPOL-TMP-") {
			t.Errorf("TempSetName(%s) = %s", name, tmp)
		}
	}
	if TempSetName("NETPOLa") == TempSetName("NETPOLb") {
		t.Error("temp names collide")
	}
}

func TestRenderSets(t *testing.T) {
	desired := []Set{
		{Name: "NETPOL4-NEW", Type: HashIP, Family: IPv4, Members: []Member{{Entry: "10.0.0.1"}}},
		{Name: "NETPOL4-SAME", Type: HashNet, Family: IPv4, Members: []Member{
			{Entry: "10.0.0.0/8"}, {Entry: "10.1.0.0/16", NoMatch: true}}},
		{Name: "NETPOL6-OTHER", Type: HashIPPort, Family: IPv6, Members: []Member{{Entry: "fd00::1,tcp:80"}}},
	}
	sameTmp := TempSetName("NETPOL4-SAME")
	existing := map[string]SetInfo{
		"NETPOL4-SAME":  {Type: HashNet, Family: IPv4},
		"NETPOL6-OTHER": {Type: HashIP, Family: IPv6},
	}
	grow, shrink, err := RenderSets(desired, existing, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantGrow := "create NETPOL4-NEW hash:ip family inet maxelem 65536\n" +
		"add NETPOL4-NEW 10.0.0.1\n" +
		"add NETPOL4-SAME 10.0.0.0/8\n" + // new members join the live set first
		"add NETPOL4-SAME 10.1.0.0/16 nomatch\n" +
		"destroy NETPOL6-OTHER\n" +
		"create NETPOL6-OTHER hash:ip,port family inet6 maxelem 65536\n" +
		"add NETPOL6-OTHER fd00::1,tcp:80\n"
	wantShrink := "create " + sameTmp + " hash:net family inet maxelem 65536\n" +
		"add " + sameTmp + " 10.0.0.0/8\n" +
		"add " + sameTmp + " 10.1.0.0/16 nomatch\n" +
		"swap " + sameTmp + " NETPOL4-SAME\n" +
		"flush " + sameTmp + "\n"
	if diff := cmp.Diff(wantGrow, string(grow)); diff != "" {
		t.Errorf("RenderSets grow (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantShrink, string(shrink)); diff != "" {
		t.Errorf("RenderSets shrink (-want +got):\n%s", diff)
	}
}

func TestRenderSetsMaxelemGrows(t *testing.T) {
	s := Set{Name: "NETPOL4-BIG", Type: HashIP, Family: IPv4, Members: make([]Member, 40000)}
	for i := range s.Members {
		s.Members[i].Entry = "10.0.0.1"
	}
	got, _, err := RenderSets([]Set{s}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(string(got), "\n"); first != "create NETPOL4-BIG hash:ip family inet maxelem 131072" {
		t.Errorf("create line %q", first)
	}
}

func TestRenderSetsInvalid(t *testing.T) {
	long := "NETPOL4-" + strings.Repeat("X", 24) // 32 characters
	tests := []struct {
		name string
		set  Set
		want string
	}{
		{"too long", Set{Name: long, Type: HashIP, Family: IPv4}, long},
		{"not ours", Set{Name: "foo", Type: HashIP, Family: IPv4}, `"foo"`},
		{"injection", Set{Name: "NETPOL4-X", Type: HashIP, Family: IPv4, Members: []Member{{Entry: "1.2.3.4\ndestroy foo"}}}, "NETPOL4-X"},
		{"nomatch outside hash:net", Set{Name: "NETPOL4-X", Type: HashIP, Family: IPv4, Members: []Member{{Entry: "1.2.3.4", NoMatch: true}}}, "nomatch"},
		{"no family", Set{Name: "NETPOL4-X", Type: HashIP}, "no family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := RenderSets([]Set{tt.set}, nil, nil)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalid naming %s", err, tt.want)
			}
		})
	}
}

func TestMemberKey(t *testing.T) {
	tests := []struct {
		t       SetType
		in      string
		noMatch bool
		want    string
	}{
		{HashIP, "10.0.0.1", false, "10.0.0.1"},
		{HashIP, "FD00:0::0001", false, "fd00::1"},
		{HashNet, "10.2.3.4/32", false, "10.2.3.4"},
		{HashNet, "192.168.1.7/24", false, "192.168.1.0/24"},
		{HashNet, "10.1.0.0/16", true, "10.1.0.0/16 nomatch"},
		{HashNet, "fd00::1/128", false, "fd00::1"},
		{HashIPPort, "10.0.0.2,80", false, "10.0.0.2,tcp:80"},
		{HashIPPort, "10.0.0.1,UDP:53", false, "10.0.0.1,udp:53"},
		{HashIPPort, "fd00:0::1,tcp:80", false, "fd00::1,tcp:80"},
	}
	for _, tt := range tests {
		if got := memberKey(tt.t, tt.in, tt.noMatch); got != tt.want {
			t.Errorf("memberKey(%s, %q) = %q, want %q", tt.t, tt.in, got, tt.want)
		}
	}
}

// Output of `ipset save` as ipset 7.17 prints it.
const saveOut = `create NETPOLn hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xde900deb
add NETPOLn 10.1.0.0/16 nomatch
add NETPOLn 10.2.3.4
add NETPOLn 10.0.0.0/8
create NETPOL6p hash:ip,port family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0xe64861f3
add NETPOL6p fd00::1,tcp:80
`

// The type and family of each set, as Apply learns them from ipset save.
func TestParseSetHeaders(t *testing.T) {
	want := map[string]SetInfo{
		"NETPOLn":  {Type: HashNet, Family: IPv4},
		"NETPOL6p": {Type: HashIPPort, Family: IPv6},
	}
	got := map[string]SetInfo{}
	for name, s := range parseIPSetSave(saveOut) {
		got[name] = s.SetInfo
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("set headers from ipset save (-want +got):\n%s", diff)
	}
}

func TestParseIPSetSaveAndDiffSet(t *testing.T) {
	saved := parseIPSetSave(saveOut)
	want := map[string]*savedSet{
		"NETPOLn": {SetInfo: SetInfo{HashNet, IPv4}, Members: map[string]bool{
			"10.1.0.0/16 nomatch": true, "10.2.3.4": true, "10.0.0.0/8": true}},
		"NETPOL6p": {SetInfo: SetInfo{HashIPPort, IPv6}, Members: map[string]bool{"fd00::1,tcp:80": true}},
	}
	if diff := cmp.Diff(want, saved); diff != "" {
		t.Fatalf("parseIPSetSave (-want +got):\n%s", diff)
	}
	set := Set{Name: "NETPOLn", Type: HashNet, Members: []Member{
		{Entry: "10.0.0.0/8"}, {Entry: "10.1.0.0/16"}, {Entry: "10.2.3.4/32"}, {Entry: "10.9.9.9"}}}
	got := diffSet(set, IPv4, saved["NETPOLn"])
	wantDiff := []string{
		"set NETPOLn: missing member: 10.1.0.0/16",
		"set NETPOLn: missing member: 10.9.9.9",
		"set NETPOLn: unexpected member: 10.1.0.0/16 nomatch",
	}
	if diff := cmp.Diff(wantDiff, got); diff != "" {
		t.Errorf("diffSet (-want +got):\n%s", diff)
	}
	if got := diffSet(set, IPv6, saved["NETPOLn"]); len(got) != 1 || got[0] != "set NETPOLn is hash:net family inet, want hash:net family inet6" {
		t.Errorf("family mismatch: %q", got)
	}
	if got := diffSet(set, IPv4, nil); len(got) != 1 || got[0] != "set NETPOLn missing" {
		t.Errorf("missing: %q", got)
	}
}

// With the kernel's contents known, grow adds only what a set lacks.
func TestRenderSetsGrowsOnlyWhatIsMissing(t *testing.T) {
	s := Set{Name: "NETPOL4-SAME", Type: HashNet, Family: IPv4, Members: []Member{
		{Entry: "10.0.0.0/8"}, {Entry: "10.1.0.0/16", NoMatch: true}}}
	existing := map[string]SetInfo{"NETPOL4-SAME": {Type: HashNet, Family: IPv4}}
	current := parseIPSetSave("create NETPOL4-SAME hash:net family inet hashsize 1024 maxelem 65536\nadd NETPOL4-SAME 10.0.0.0/8\n")
	grow, _, err := RenderSets([]Set{s}, existing, current)
	if err != nil {
		t.Fatal(err)
	}
	if want := "add NETPOL4-SAME 10.1.0.0/16 nomatch\n"; string(grow) != want {
		t.Errorf("grow = %q, want %q", grow, want)
	}
}

// FuzzMemberKeyIPv4: the shortcut of memberKey for a plain IPv4 address
// gives what canonicalAddr gives (the key `ipset save` prints).
func FuzzMemberKeyIPv4(f *testing.F) {
	for _, s := range []string{"10.1.2.3", "0.0.0.0", "255.255.255.255", "010.1.2.3", "1.2.3", "1.2.3.4.5", "::ffff:1.2.3.4", "1.2.3.4 ", "", "1.2.3.256"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		if strings.ContainsAny(entry, ",/:") {
			return
		}
		if got, want := memberKey(HashIP, entry, false), canonicalAddr(entry); got != want {
			t.Errorf("memberKey(%q) = %q, want %q", entry, got, want)
		}
	})
}
