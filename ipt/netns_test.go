package ipt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
)

// testNS is a throwaway network namespace: every kernel test runs in its own,
// so the root namespace's firewall and sets are never touched.
type testNS struct {
	tb   testing.TB
	name string
}

// newTestNS creates a uniquely named namespace, deleted when the test ends,
// whatever the outcome. It skips the test when not root.
func newTestNS(tb testing.TB) *testNS {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create network namespaces")
	}
	buf := make([]byte, 6)
	if _, err := rand.Read(buf); err != nil {
		tb.Fatal(err)
	}
	name := "ipt-test-" + hex.EncodeToString(buf)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return &testNS{tb: tb, name: name}
}

// runner returns a Runner of mode inside the namespace.
func (ns *testNS) runner(mode Mode) *Runner {
	return &Runner{Mode: mode, NetNS: ns.name, Timeout: time.Minute}
}

// try runs a command inside the namespace.
func (ns *testNS) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs a command inside the namespace and fails the test if it fails.
func (ns *testNS) must(args ...string) string {
	ns.tb.Helper()
	out, err := ns.try(args...)
	if err != nil {
		ns.tb.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// mustIn is must with stdin.
func (ns *testNS) mustIn(stdin string, args ...string) {
	ns.tb.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		ns.tb.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// filterRules returns the rule lines of the filter table of fam as
// iptables-save prints them: chain -> its "-A" lines, and the declared chains.
func (ns *testNS) filterRules(mode Mode, fam Family) (map[string][]string, []string) {
	ns.tb.Helper()
	t := parseSave(ns.must(mode.binary(fam, "-save"), "-t", "filter"))
	var chains []string
	for c := range t.Declared {
		chains = append(chains, c)
	}
	sort.Strings(chains)
	return t.Rules, chains
}

// setNames returns `ipset list -n`, sorted.
func (ns *testNS) setNames() []string {
	ns.tb.Helper()
	names := strings.Fields(ns.must("ipset", "list", "-n"))
	sort.Strings(names)
	return names
}

// traceOf reports whether s mentions anything of ours.
func traceOf(s string) bool { return strings.Contains(s, Prefix) }

// sortStrings makes cmp compare string slices as sets.
var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// nftRunner returns a new test namespace and an nft-mode Runner of it:
// one that enters it per command, or, inside, a Runner of the calling
// thread's namespace after the thread was locked into it (enterNS).
func nftRunner(t *testing.T, inside bool) (*testNS, *Runner) {
	t.Helper()
	ns := newTestNS(t)
	if !inside {
		return ns, ns.runner(ModeNFT)
	}
	enterNS(t, ns)
	return ns, &Runner{Mode: ModeNFT, Timeout: time.Minute}
}

// memberKeys is the set of s's members in memberKey form, as
// parseIPSetSave gives a set read back.
func memberKeys(s Set) map[string]bool {
	keys := make(map[string]bool, len(s.Members))
	for _, m := range s.Members {
		keys[memberKey(s.Type, m.Entry, m.NoMatch)] = true
	}
	return keys
}
