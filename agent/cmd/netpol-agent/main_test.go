package main

import (
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		name        string
		args        []string
		inPod       bool
		err         string
		api         bool
		metricsAddr string
	}{
		{name: "manifests", args: []string{"--manifests", "d"}},
		{name: "manifests with metrics", args: []string{"--manifests", "d", "--metrics-addr", "127.0.0.1:0"}, metricsAddr: "127.0.0.1:0"},
		{name: "kubeconfig", args: []string{"--kubeconfig", "k", "--node-name", "n"}, api: true, metricsAddr: "127.0.0.1:9101"},
		{name: "kubeconfig once", args: []string{"--kubeconfig", "k", "--node-name", "n", "--once"}, api: true},
		{name: "metrics off", args: []string{"--kubeconfig", "k", "--node-name", "n", "--metrics-addr", "off"}, api: true},
		{name: "in a pod", inPod: true, args: []string{"--node-name", "n"}, api: true, metricsAddr: "127.0.0.1:9101"},
		{name: "no source", args: nil, err: "--manifests or --kubeconfig is required"},
		{name: "both sources", args: []string{"--manifests", "d", "--kubeconfig", "k"}, err: "exclude each other"},
		{name: "API without node", args: []string{"--kubeconfig", "k", "--node-name", ""}, err: "node's name"},
		{name: "uninstall", args: []string{"--uninstall"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			host := ""
			if c.inPod {
				host = "10.0.0.1"
			}
			t.Setenv("KUBERNETES_SERVICE_HOST", host)
			t.Setenv("NODE_NAME", "")
			o, err := parseFlags(c.args)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("parseFlags(%v) = %v, want an error with %q", c.args, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !o.uninstall && o.api() != c.api {
				t.Errorf("api() = %v, want %v", o.api(), c.api)
			}
			if o.metricsAddr != c.metricsAddr {
				t.Errorf("metricsAddr = %q, want %q", o.metricsAddr, c.metricsAddr)
			}
		})
	}
}

func TestSubcommand(t *testing.T) {
	for _, c := range []struct {
		name, want string
		args, rest []string
	}{
		{name: "explain first", args: []string{"explain", "--port", "80"}, want: "explain", rest: []string{"--port", "80"}},
		{name: "flags before", args: []string{"--data-dir", "d", "explain", "--port", "80"}, want: "explain",
			rest: []string{"--data-dir", "d", "--port", "80"}},
		{name: "after a bool flag", args: []string{"--once", "install-cni"}, want: "install-cni", rest: []string{"--once"}},
		{name: "flag value is explain", args: []string{"--manifests", "explain", "--once"}, rest: []string{"--manifests", "explain", "--once"}},
		{name: "flag value is explain, single dash", args: []string{"-data-dir", "explain", "--manifests", "m"},
			rest: []string{"-data-dir", "explain", "--manifests", "m"}},
		{name: "flag value is uninstall-cni, with =", args: []string{"--manifests=uninstall-cni"}, rest: []string{"--manifests=uninstall-cni"}},
		{name: "value explain, then explain", args: []string{"--data-dir", "explain", "explain"}, want: "explain",
			rest: []string{"--data-dir", "explain"}},
		{name: "after --", args: []string{"--", "explain"}, rest: []string{"--", "explain"}},
		{name: "no subcommand", args: []string{"--manifests", "d", "--once"}, rest: []string{"--manifests", "d", "--once"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, rest := subcommand(c.args)
			if got != c.want || strings.Join(rest, " ") != strings.Join(c.rest, " ") {
				t.Errorf("subcommand(%q) = %q, %q; want %q, %q", c.args, got, rest, c.want, c.rest)
			}
		})
	}
}
