package cluster_test

// What containerd 2.4.2 itself sends to the CNI chain, recorded by wrapper
// scripts in front of the real plugins (recorder): the verbs, their order,
// the cniVersion and the CNI_ARGS of every call.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/integration/cluster/runtime"
)

// TestRuntimeCNIVerbs runs one pod through its life (runp, a CRI Status
// call, stopp, rmp) with the shipped conflist (cniVersion 1.0.0) and with
// cniVersion 1.1.0, and asserts exactly the calls containerd made:
//
//	runp:        ADD to bridge, netpol, portmap (in chain order)
//	crictl info: STATUS to bridge, netpol, portmap, only with 1.1.0
//	stopp:       DEL to portmap, netpol, bridge (reverse order), with the
//	             pod's netns and the cached result as prevResult
//	rmp:         DEL again, reverse order, with no netns and no prevResult
//
// Every call carries the conflist's cniVersion; ADD and DEL carry
// CNI_ARGS IgnoreUnknown=1, K8S_POD_NAMESPACE, K8S_POD_NAME,
// K8S_POD_INFRA_CONTAINER_ID (the sandbox id) and K8S_POD_UID, in no fixed
// order; STATUS carries none. No CHECK and no GC is ever sent.
func TestRuntimeCNIVerbs(t *testing.T) {
	for _, v := range []string{"1.0.0", "1.1.0"} {
		t.Run("cniVersion="+v, func(t *testing.T) {
			o := runtimeOptions{}
			if v != "1.0.0" {
				o.cniVersion = v
			}
			e := newRuntimeEnv(t, o)
			if got := jsonString(string(e.node.Conflist()), "cniVersion"); o.cniVersion == "" && got != v {
				t.Fatalf("shipped conflist has cniVersion %q; this test expects %q", got, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			chain := []string{"bridge", "netpol", "portmap"}
			reverse := []string{"portmap", "netpol", "bridge"}

			e.calls.reset(t)
			p := e.runPod(t, "default", "verbs", nil)
			add := e.calls.Calls(t)
			checkCalls(t, "runp", add, "ADD", chain, v)
			checkPodArgs(t, "runp", add, p)
			netns := add[0].NetNS
			if netns == "" || !slices.ContainsFunc(add, func(c call) bool { return c.NetNS == netns }) {
				t.Errorf("runp: ADD without one netns: %+v", add)
			}

			e.calls.reset(t)
			if _, err := e.rt.Crictl(ctx, "info"); err != nil {
				t.Fatal(err)
			}
			want := chain
			if v == "1.0.0" {
				want = nil // libcni sends STATUS only from 1.1.0 on
			}
			checkCalls(t, "crictl info", e.calls.Calls(t), "STATUS", want, v)

			e.calls.reset(t)
			if err := e.rt.StopPod(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
			del := e.calls.Calls(t)
			checkCalls(t, "stopp", del, "DEL", reverse, v)
			checkPodArgs(t, "stopp", del, p)
			for _, c := range del {
				if c.NetNS != netns || !strings.Contains(c.Stdin, `"prevResult"`) {
					t.Errorf("stopp: %s DEL with netns %q and prevResult %v; want netns %q and the cached prevResult",
						c.Plugin, c.NetNS, strings.Contains(c.Stdin, `"prevResult"`), netns)
				}
			}

			e.calls.reset(t)
			if err := e.rt.RemovePod(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
			del = e.calls.Calls(t)
			checkCalls(t, "rmp", del, "DEL", reverse, v)
			checkPodArgs(t, "rmp", del, p)
			for _, c := range del {
				if c.NetNS != "" || strings.Contains(c.Stdin, `"prevResult"`) {
					t.Errorf("rmp: %s DEL with netns %q and prevResult %v; want neither",
						c.Plugin, c.NetNS, strings.Contains(c.Stdin, `"prevResult"`))
				}
			}
		})
	}
}

// checkCalls asserts that calls are exactly verb to plugins, in that
// order, all with cniVersion v.
func checkCalls(t *testing.T, phase string, calls []call, verb string, plugins []string, v string) {
	t.Helper()
	var got, want []string
	for _, c := range calls {
		got = append(got, c.Command+" "+c.Plugin+" "+c.Version)
	}
	for _, p := range plugins {
		want = append(want, verb+" "+p+" "+v)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: CNI calls %q; want %q", phase, got, want)
	}
}

// checkPodArgs asserts the CNI_ARGS of every call: exactly the pod's keys.
func checkPodArgs(t *testing.T, phase string, calls []call, p *runtime.Pod) {
	t.Helper()
	want := []string{"IgnoreUnknown=1", "K8S_POD_INFRA_CONTAINER_ID=" + p.ID,
		"K8S_POD_NAME=" + p.Name, "K8S_POD_NAMESPACE=" + p.Namespace, "K8S_POD_UID=" + p.UID}
	for _, c := range calls {
		got := strings.Split(c.Args, ";")
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %s %s CNI_ARGS %q; want the keys %q", phase, c.Command, c.Plugin, c.Args, want)
		}
	}
}

// TestRuntimeStatusBridgeNF: with a 1.1.0 conflist, containerd's
// NetworkReady condition follows netpol's STATUS: false, with netpol's
// message, while bridged traffic bypasses iptables
// (net.bridge.bridge-nf-call-iptables=0 in the node namespace), true
// again once it is back on.
func TestRuntimeStatusBridgeNF(t *testing.T) {
	e := newRuntimeEnv(t, runtimeOptions{cniVersion: "1.1.0"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	set := func(v string) {
		t.Helper()
		if _, err := e.node.Exec(ctx, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables="+v); err != nil {
			t.Fatal(err)
		}
	}
	if ready, msg := networkReady(t, e.rt); !ready {
		t.Fatalf("NetworkReady false before the change: %s", msg)
	}
	set("0")
	ready, msg := networkReady(t, e.rt)
	if ready || !strings.Contains(msg, "netpol:") || !strings.Contains(msg, "bridge-nf-call-iptables") {
		t.Errorf("with bridge-nf-call-iptables=0: NetworkReady %v, message %q; want false with netpol's message", ready, msg)
	}
	set("1")
	if ready, msg := networkReady(t, e.rt); !ready {
		t.Errorf("NetworkReady false after bridge-nf-call-iptables=1: %s", msg)
	}
}

// networkReady returns the CRI's NetworkReady condition (crictl info).
func networkReady(t *testing.T, rt *runtime.Runtime) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := rt.Crictl(ctx, "info")
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	var info struct {
		Status struct {
			Conditions []struct {
				Type    string `json:"type"`
				Status  bool   `json:"status"`
				Reason  string `json:"reason"`
				Message string `json:"message"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("crictl info: %v\n%s", err, out)
	}
	for _, c := range info.Status.Conditions {
		if c.Type == "NetworkReady" {
			return c.Status, fmt.Sprintf("%s: %s", c.Reason, c.Message)
		}
	}
	t.Fatalf("crictl info has no NetworkReady condition:\n%s", out)
	return false, ""
}
