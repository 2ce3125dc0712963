package integration

// CNI input no real runtime should send, given to the real plugin on a node
// whose pods run under a policy: a pod name or namespace the API server
// would reject, and a prevResult that leaves the pod no address. Each ADD
// fails naming what is wrong, and nothing recorded or installed changes:
// the running pod is not moved into the DENY set.

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/netpol/netpol/integration/node"
)

func TestBadCNIInputLeavesRunningPodAlone(t *testing.T) {
	n, _ := singleNodeWorld(t, node.Options{}, map[string]string{"default/web": "app=web", "default/db": "app=db"}, true)
	pods := addServingPods(t, n, "default/web", "default/db")
	db := pods[1]
	allowed := []string{"default/web>default/db", "default/db>default/web"}
	expectMatrix(t, "before", pods, pods, allowed...)
	record := filepath.Join(n.DataDir, "pods", recordFileName(db))
	recordBefore, setsBefore, rulesBefore := string(readFileIfAny(t, record)), nodeSets(t, n), enforcedRules(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	named := func(ns, name string) node.PodArgs { a := db.Args(); a.Namespace, a.Name = ns, name; return a }
	hostOnly := *db.Result
	hostOnly.IPs = nil
	for _, ipc := range db.Result.IPs {
		c := *ipc
		for i, iface := range db.Result.Interfaces {
			if iface.Sandbox == "" {
				c.Interface = types100.Int(i) // the host side of the veth, or the bridge
			}
		}
		hostOnly.IPs = append(hostOnly.IPs, &c)
	}
	noIPs := *db.Result
	noIPs.IPs = nil
	for _, tc := range []struct {
		what   string
		args   node.PodArgs
		result *types100.Result
		says   string
	}{
		{"name a command", named("default", "$(touch x)"), db.Result, `K8S_POD_NAME: "$(touch x)" is not a valid pod name`},
		{"name 254 characters", named("default", strings.Repeat("d", 254)), db.Result, "must be no more than 253 characters"},
		{"namespace not a label", named("default.x", "db"), db.Result, `K8S_POD_NAMESPACE: "default.x" is not a valid namespace`},
		{"prevResult without ips", db.Args(), &noIPs, "prevResult.ips is empty"},
		{"prevResult with host addresses only", db.Args(), &hostOnly, "which is not in the sandbox"},
	} {
		_, err := n.InvokePlugin(ctx, "ADD", "netpol", tc.args, tc.result)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ADD of %s's container with %s = %v, want an error saying %q", db.Label(), tc.what, err, tc.says)
		}
		if got := string(readFileIfAny(t, record)); got != recordBefore {
			t.Errorf("ADD with %s rewrote the record:\n%s\nwas\n%s", tc.what, got, recordBefore)
		}
		if sets := nodeSets(t, n); !maps.EqualFunc(sets, setsBefore, slices.Equal[[]string]) {
			t.Errorf("ADD with %s changed the sets:\n%v\nwere\n%v", tc.what, sets, setsBefore)
		}
		if rules := enforcedRules(t, n); rules != rulesBefore {
			t.Errorf("ADD with %s changed the rules", tc.what)
		}
	}
	expectMatrix(t, "after bad ADDs", pods, pods, allowed...)
	if err := n.CheckPod(db); err != nil {
		t.Errorf("CHECK of %s after bad ADDs: %v", db.Label(), err)
	}
}
