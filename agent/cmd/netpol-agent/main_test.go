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
