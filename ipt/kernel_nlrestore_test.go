package ipt

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink/nl"
)

// nlRestoreInput is a restore input of every form the Runner renders:
// creates of each set type and family, batches longer than nlBatch, nomatch
// members, a swap through a temporary and its flush, dels (one of an absent
// member), adds and a create that change nothing under -exist, a destroy.
func nlRestoreInput() string {
	var b strings.Builder
	b.WriteString("create NETPOL4-A hash:ip family inet maxelem 65536\n")
	for i := range 600 {
		fmt.Fprintf(&b, "add NETPOL4-A 10.0.%d.%d\n", i/250, i%250+1)
	}
	b.WriteString(`create NETPOL4-N hash:net family inet maxelem 65536
add NETPOL4-N 10.1.0.0/16
add NETPOL4-N 10.1.2.0/24 nomatch
add NETPOL4-N 10.9.9.9/32
create NETPOL6-P hash:ip,port family inet6 maxelem 65536
add NETPOL6-P fd00::1,tcp:80
add NETPOL6-P fd00::2,udp:53
add NETPOL6-P fd00::3,sctp:9
create NETPOL6-N hash:net family inet6 maxelem 131072
add NETPOL6-N fd00::/64
add NETPOL6-N fd00::8/125 nomatch
create NETPOL-TMP-1 hash:ip family inet maxelem 65536
add NETPOL-TMP-1 10.0.0.9
add NETPOL-TMP-1 10.0.0.10
swap NETPOL-TMP-1 NETPOL4-A
flush NETPOL-TMP-1
del NETPOL4-N 10.9.9.9/32
del NETPOL4-N 10.99.0.0/16
add NETPOL4-A 10.0.0.9
create NETPOL4-A hash:ip family inet maxelem 65536
create NETPOL4-GONE hash:ip family inet maxelem 65536
add NETPOL4-GONE 10.7.7.7
destroy NETPOL4-GONE
`)
	return b.String()
}

// initvalRe matches the random hash seed `ipset save` prints per set.
var initvalRe = regexp.MustCompile(` initval 0x[0-9a-f]+`)

// TestKernelNetlinkRestoreMatchesBinary: netlinkRestore of an input leaves
// the kernel holding, line for line of `ipset save`, what `ipset -exist
// restore` of the same input leaves (each in its own namespace; the
// random initval aside).
func TestKernelNetlinkRestoreMatchesBinary(t *testing.T) {
	input := nlRestoreInput()
	bin := newTestNS(t)
	bin.mustIn(input, "ipset", "-exist", "restore")
	nlns := newTestNS(t)
	enterNS(t, nlns)
	if err := netlinkRestore(context.Background(), []byte(input)); err != nil {
		t.Fatalf("netlinkRestore: %v", err)
	}
	want := initvalRe.ReplaceAllString(bin.must("ipset", "save"), "")
	got := initvalRe.ReplaceAllString(nlns.must("ipset", "save"), "")
	if diff := cmp.Diff(strings.Split(want, "\n"), strings.Split(got, "\n"), sortStrings); diff != "" {
		t.Errorf("ipset save after the restore (-binary +netlink):\n%s\nbinary:\n%s\nnetlink:\n%s", diff, want, got)
	}
	if !strings.Contains(got, "add NETPOL4-N 10.1.2.0/24 nomatch") || strings.Contains(got, "NETPOL4-GONE") {
		t.Errorf("the netlink restore lost a nomatch flag or a destroy:\n%s", got)
	}
}

// TestKernelNetlinkRestoreStopsAtTheRefusedLine: a line the kernel refuses
// (here a member of the wrong family in the middle of a batch, then a set
// that does not exist) fails the restore as the binary's does: a
// *RestoreError naming that line, the lines before it done and none after.
func TestKernelNetlinkRestoreStopsAtTheRefusedLine(t *testing.T) {
	for name, tc := range map[string]struct {
		input    string
		line     int
		inA, out []string // members of NETPOL4-A after it, and not in it
	}{
		"wrong family in a batch": {
			input: "create NETPOL4-A hash:ip family inet maxelem 65536\n" +
				"add NETPOL4-A 10.0.0.1\nadd NETPOL4-A 10.0.0.2\nadd NETPOL4-A fd00::1\nadd NETPOL4-A 10.0.0.4\n",
			line: 4, inA: []string{"10.0.0.1", "10.0.0.2"}, out: []string{"10.0.0.4"},
		},
		"missing set": {
			input: "create NETPOL4-A hash:ip family inet maxelem 65536\n" +
				"add NETPOL4-A 10.0.0.1\nadd NETPOL4-NOSUCH 10.0.0.2\nadd NETPOL4-A 10.0.0.3\n",
			line: 3, inA: []string{"10.0.0.1"}, out: []string{"10.0.0.3"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			ns := newTestNS(t)
			_, binErr := ns.try("sh", "-c", "ipset -exist restore <<'EOF'\n"+tc.input+"EOF")
			if binErr == nil {
				t.Fatalf("the ipset binary took the input")
			}
			ns.must("ipset", "destroy")
			enterNS(t, ns)
			err := netlinkRestore(context.Background(), []byte(tc.input))
			var re *RestoreError
			if !errors.As(err, &re) || re.Line != tc.line {
				t.Fatalf("netlinkRestore = %v, want a *RestoreError at line %d", err, tc.line)
			}
			save := ns.must("ipset", "save", "NETPOL4-A")
			for _, m := range tc.inA {
				if !strings.Contains(save, "add NETPOL4-A "+m+"\n") {
					t.Errorf("%s, before the refused line, is not in the set:\n%s", m, save)
				}
			}
			for _, m := range tc.out {
				if strings.Contains(save, "add NETPOL4-A "+m+"\n") {
					t.Errorf("%s, after the refused line, is in the set:\n%s", m, save)
				}
			}
		})
	}
}

// TestParseRestoreRefusesWhatItCannotSend: a line of a form the Runner
// does not render, or a member netlink cannot carry exactly, leaves the
// whole input to the ipset binary.
func TestParseRestoreRefusesWhatItCannotSend(t *testing.T) {
	for _, line := range []string{
		"create NETPOL4-A hash:ip family inet maxelem 65536 timeout 5",
		"create NETPOL4-A list:set family inet maxelem 65536",
		"create NETPOL4-A hash:ip family inet4 maxelem 65536",
		"rename NETPOL4-A NETPOL4-B",
		"add NETPOL4-A 10.0.0.1,8080",
		"add NETPOL4-A 10.0.0.0/0",
		"add NETPOL4-A ::ffff:10.0.0.1",
		"add NETPOL4-A 10.0.0.1 timeout 5",
		"swap NETPOL4-A",
	} {
		if _, ok := parseRestore([]byte("create NETPOL4-A hash:ip family inet maxelem 65536\n" + line + "\n")); ok {
			t.Errorf("parseRestore took %q", line)
		}
	}
	if ops, ok := parseRestore([]byte(nlRestoreInput())); !ok || len(ops) < 600 {
		t.Errorf("parseRestore of the Runner's forms = %d ops, %v", len(ops), ok)
	}
}

// TestNetlinkRestoreBusyIsBusy: the kernel's refusals to destroy or swap a
// set that is dumped read as isBusy, as the binary's do, so that the
// callers retry them.
func TestNetlinkRestoreBusyIsBusy(t *testing.T) {
	for _, errno := range []syscall.Errno{nl.IPSET_ERR_BUSY, syscall.EBUSY} {
		err := netlinkRestoreError([]byte("destroy NETPOL4-A\n"), ipsetOp{line: 1, verb: "destroy", set: "NETPOL4-A"}, errno)
		if !isBusy(err) {
			t.Errorf("errno %d: %v is not busy", errno, err)
		}
	}
	if err := netlinkRestoreError([]byte("add NETPOL4-A 10.0.0.1\n"), ipsetOp{line: 1}, syscall.ENOENT); isBusy(err) {
		t.Errorf("%v is busy", err)
	}
}
