package plugin

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// heavyDeps are the packages the plugin binary must not link: the
// Kubernetes API types and machinery and what they bring (YAML, CBOR,
// inf, klog, structured-merge-diff). Their package initialisation alone
// cost every CNI invocation about 10 ms (GODEBUG=inittrace=1: 131 inits),
// more than the verb itself; see the README's performance notes.
var heavyDeps = regexp.MustCompile(`k8s\.io|sigs\.k8s|yaml|inf\.v0|cbor|klog`)

// TestBinaryLinksNoKubernetes lists, with `go list -deps`, every package
// the plugin and its command link (test files aside) and fails on each one
// heavyDeps matches.
func TestBinaryLinksNoKubernetes(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go list needs the go command: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/netpol/netpol/plugin/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	for _, d := range deps {
		if heavyDeps.MatchString(d) {
			t.Errorf("the plugin links %s", d)
		}
	}
}
