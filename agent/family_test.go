package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy"
	"github.com/netpol/netpol/state"
)

// noIP6Kernel is a kernel whose ip6tables is unusable (while broken): an
// Apply with an IPv6 ruleset fails, as Usable(IPv6) says.
type noIP6Kernel struct {
	fakeKernel
	broken bool
	last   []ipt.Family // families of the last Apply
}

func (k *noIP6Kernel) Apply(_ context.Context, rulesets []ipt.Ruleset) error {
	k.last = nil
	for _, rs := range rulesets {
		k.last = append(k.last, rs.Family)
		if rs.Family == ipt.IPv6 && k.broken {
			return errors.New("ip6tables-nft-restore: executable file not found")
		}
	}
	return nil
}

func (k *noIP6Kernel) Usable(_ context.Context, f ipt.Family) error {
	if f == ipt.IPv6 && k.broken {
		return errors.New("ip6tables-nft: executable file not found")
	}
	return nil
}

// TestSyncWithoutIP6Tables: with ip6tables unusable and only IPv4 pods, a
// sync enforces IPv4 and reports IPv6 disabled, warning once per change of
// state; a local pod with an IPv6 address makes the sync fail closed; once
// ip6tables works, IPv6 is enforced again.
func TestSyncWithoutIP6Tables(t *testing.T) {
	st := state.New(t.TempDir())
	if err := st.WriteAttachment(&policy.Attachment{ContainerID: "c1", IfName: "eth0",
		Namespace: "default", Name: "a", IPs: []string{"10.0.0.5"}}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	k := &noIP6Kernel{broken: true}
	a := &Agent{Store: st, Kernel: k, Log: slog.New(slog.NewTextHandler(&logs, nil)), LockTimeout: time.Second}
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		res, err := a.Sync(ctx, snapshot("default"))
		if err != nil {
			t.Fatalf("sync %d with ip6tables unusable and no IPv6 pod: %v", i, err)
		}
		if len(res.Disabled) != 1 || res.Disabled[0] != ipt.IPv6 {
			t.Errorf("sync %d: Disabled = %v, want [ipv6]", i, res.Disabled)
		}
		if len(k.last) != 1 || k.last[0] != ipt.IPv4 {
			t.Errorf("sync %d: last Apply had %v, want IPv4 only", i, k.last)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings over two syncs, want 1:\n%s", n, logs.String())
	}

	if err := st.WriteAttachment(&policy.Attachment{ContainerID: "c2", IfName: "eth0",
		Namespace: "default", Name: "b", IPs: []string{"fd00::5"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx, snapshot("default")); err == nil {
		t.Error("sync with an IPv6 pod and ip6tables unusable succeeded; want it to fail closed")
	}
	if err := st.RemoveAttachment("c2", "eth0"); err != nil {
		t.Fatal(err)
	}

	k.broken = false
	res, err := a.Sync(ctx, snapshot("default"))
	if err != nil || len(res.Disabled) != 0 || len(k.last) != 2 {
		t.Errorf("sync with ip6tables back: Disabled = %v, families %v, %v; want both enforced", res.Disabled, k.last, err)
	}
}
