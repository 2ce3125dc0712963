package ipt

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestKernelFailedFamilyAtOnce: with the nft backend the families apply
// side by side, by Apply and by ApplyChange (a change of chains);
// whichever family's transaction fails, its error is returned (a
// *RestoreError naming only that family), that family keeps its old rules
// with its sets shrunk back to their old members (the member the failed
// sync granted is not in force), and the other family is entirely new
// (its revoked member is gone). Both for a Runner that enters the
// namespace per command (families side by side) and for one whose caller
// locked its thread into the namespace (the second family's goroutine is
// not there: it must run on the caller's thread, so both families must
// land in the test's namespace).
func TestKernelFailedFamilyAtOnce(t *testing.T) {
	for _, change := range []bool{false, true} {
		for _, inside := range []bool{false, true} {
			for _, broken := range Families {
				name := map[bool]string{false: "Apply", true: "ApplyChange"}[change] + ", " +
					map[bool]string{false: "per command", true: "inside"}[inside] + ", broken " + broken.String()
				failFamily(t, name, change, inside, broken)
			}
		}
	}
}

// failFamily is one case of TestKernelFailedFamilyAtOnce.
func failFamily(t *testing.T, name string, change, inside bool, broken Family) {
	t.Helper()
	ns, r := nftRunner(t, inside)
	ctx := context.Background()
	old := map[Family]*Ruleset{IPv4: testRuleset(), IPv6: testRuleset6()}
	if err := r.Apply(ctx, []Ruleset{*old[IPv4], *old[IPv6]}); err != nil {
		t.Fatal(err)
	}
	next := map[Family]*Ruleset{IPv4: testRuleset(), IPv6: testRuleset6()}
	next[IPv4].Sets[0].Members = []Member{{Entry: "10.0.0.1"}}  // 10.0.0.2 revoked
	next[IPv6].Sets[0].Members = next[IPv6].Sets[0].Members[:2] // fd01::1 revoked
	granted := map[Family]string{IPv4: "10.9.9.9", IPv6: "fd09::9"}
	bad := next[broken]
	bad.Sets[0].Members = append(bad.Sets[0].Members, Member{Entry: granted[broken]})
	bad.Chains[1].Rules = append(bad.Chains[1].Rules, Rule{Verdict: Jump("NETPOL-NOPE")})
	var err error
	if change {
		err = r.ApplyChange(ctx, []Ruleset{*old[IPv4], *old[IPv6]}, []Ruleset{*next[IPv4], *next[IPv6]})
	} else {
		err = r.Apply(ctx, []Ruleset{*next[IPv4], *next[IPv6]})
	}
	var re *RestoreError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "apply "+broken.String()) {
		t.Fatalf("%s: error %v, want a *RestoreError of apply %s", name, err, broken)
	}
	for _, f := range Families {
		if f != broken && strings.Contains(err.Error(), "apply "+f.String()) {
			t.Errorf("%s: error %v names the family that succeeded", name, err)
		}
		want := next[f]
		if f == broken {
			want = old[f]
		}
		if d, err := r.Diff(ctx, want); err != nil || len(d) != 0 {
			t.Errorf("%s: %s is not entirely %s: Diff = %q, %v", name, f,
				map[bool]string{true: "old", false: "new"}[f == broken], d, err)
		}
	}
	revoked := map[Family]string{IPv4: "10.0.0.2", IPv6: "fd01::1"}
	for f, set := range map[Family]string{IPv4: "NETPOL4-PEERS", IPv6: "NETPOL6-PEERS"} {
		out := ns.must("ipset", "list", set)
		if f == broken && strings.Contains(out, granted[f]+"\n") {
			t.Errorf("%s: member %s of the failed sync is in %s:\n%s", name, granted[f], set, out)
		}
		if f != broken && strings.Contains(out, revoked[f]+"\n") {
			t.Errorf("%s: revoked member %s still in %s:\n%s", name, revoked[f], set, out)
		}
	}
}
