package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol/netpol/ipt"
	"github.com/netpol/netpol/policy/node"
)

func TestExpectedRoundTrip(t *testing.T) {
	s := New(t.TempDir())
	if _, err := s.ReadExpected(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no file yet: %v, want os.ErrNotExist", err)
	}
	idx := &node.Index{Version: 1, Isolated: []string{"default"}, Pods: map[string][]node.Membership{
		"default/db": {{Family: ipt.IPv4, Set: "NETPOL4-GI-X"}}}}
	if err := s.WriteIndex(idx); err != nil {
		t.Fatal(err)
	}
	want := &node.Expected{Version: node.ExpectedVersion, Index: IndexSum(EncodeIndex(idx)), Families: []node.ExpectedFamily{{
		Family: ipt.IPv4,
		Hooks:  []ipt.RenderedHook{{Chain: ipt.Forward, Position: 1, Rule: "-A FORWARD -j NETPOL-FORWARD"}},
		Chains: []node.ExpectedChain{
			{RenderedChain: ipt.RenderedChain{Name: "NETPOL-FORWARD", Rules: []string{"-A NETPOL-FORWARD -j RETURN"}}},
			{RenderedChain: ipt.RenderedChain{Name: "NETPOL-GI-X", Rules: []string{"-A NETPOL-GI-X -j DROP"}},
				Groups: []string{"NETPOL4-GI-X"}},
		},
	}}}
	body, err := EncodeExpectedFamilies(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteExpected(want.Index, body); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadExpected()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("read back (-want +got):\n%s", d)
	}
	gotIdx, sum, err := s.ReadIndexSummed("default/db")
	if err != nil || sum != got.Index || len(gotIdx.Pods) != 1 {
		t.Errorf("ReadIndexSummed = %v, sum %s, %v; want the pod and the sum %s", gotIdx, sum, err, got.Index)
	}
	path := filepath.Join(s.Dir, expectedFile)
	for _, bad := range []string{"netpol-expected 2 abc\n[]", "something else\n[]", "netpol-expected 1 abc\n[{\"nope\":1}]", ""} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadExpected(); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: ReadExpected = %v, want an error naming %s", bad, err, path)
		}
	}
}
