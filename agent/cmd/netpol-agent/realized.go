package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/netpol/netpol/conf"
	"github.com/netpol/netpol/state"
)

// status implements `netpol-agent status --data-dir D`: per NetworkPolicy,
// the version in force on this node, when the agent received it and when
// the kernel committed it. Exit status 0, or 2 when nothing can be read.
func status(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netpol-agent status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", conf.DefaultDataDir, "data directory shared with the CNI plugin")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	r, err := state.New(*dataDir).ReadRealized()
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(stderr, "netpol-agent status: the agent has not synced this data directory yet:", *dataDir)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "netpol-agent status:", err)
		return 2
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POLICY\tVERSION\tRECEIVED\tREALIZED\tTOOK")
	for _, p := range r.Policies {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Policy, p.Version, p.Received.UTC().Format(time.RFC3339Nano),
			p.Realized.UTC().Format(time.RFC3339Nano), p.Realized.Sub(p.Received).Round(time.Microsecond))
	}
	if err := w.Flush(); err != nil {
		return 2
	}
	return 0
}

// wait implements `netpol-agent wait --data-dir D --policy NS/NAME
// [--version V] --timeout T`: exit 0 once the kernel of this node holds
// that version of the policy (any version when none is given), 1 with the
// version in force (if any) when T passes first, 2 on bad usage.
func wait(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netpol-agent wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", conf.DefaultDataDir, "data directory shared with the CNI plugin")
	key := fs.String("policy", "", "namespace/name of the NetworkPolicy")
	version := fs.String("version", "", "the version to wait for: a resourceVersion (API) or sha256:... (manifests); default any")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *key == "" || *timeout <= 0 {
		fmt.Fprintln(stderr, "netpol-agent wait: --policy namespace/name and a positive --timeout are required")
		return 2
	}
	st := state.New(*dataDir)
	deadline := time.Now().Add(*timeout)
	for {
		cur, found := inForce(st, *key)
		if found && (*version == "" || cur.Version == *version) {
			fmt.Fprintf(stdout, "%s version %s in force since %s\n", cur.Policy, cur.Version, cur.Realized.UTC().Format(time.RFC3339Nano))
			return 0
		}
		if time.Now().After(deadline) {
			want := "any version"
			if *version != "" {
				want = "version " + *version
			}
			now := "it is not in force"
			if found {
				now = "version " + cur.Version + " is in force"
			}
			fmt.Fprintf(stderr, "netpol-agent wait: timed out after %s waiting for %s of %s: %s\n", *timeout, want, *key, now)
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inForce returns the realization of policy key, if the node enforces it.
func inForce(st *state.Store, key string) (state.PolicyRealized, bool) {
	r, err := st.ReadRealized()
	if err != nil {
		return state.PolicyRealized{}, false
	}
	for _, p := range r.Policies {
		if p.Policy == key {
			return p, true
		}
	}
	return state.PolicyRealized{}, false
}
