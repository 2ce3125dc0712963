package manifest

import (
	"cmp"
	"testing"

	"github.com/netpol/netpol/policy"
)

// compareKeys orders pods as their keys do, prefixes and slashes included.
func TestCompareKeys(t *testing.T) {
	names := []string{"", "a", "ab", "a-b", "a/b", "a.b", "b", "ab/", "a0"}
	for _, xn := range names {
		for _, xp := range names {
			for _, yn := range names {
				for _, yp := range names {
					x, y := &policy.Pod{Namespace: xn, Name: xp}, &policy.Pod{Namespace: yn, Name: yp}
					if got, want := compareKeys(x, y), cmp.Compare(x.Key(), y.Key()); got != want {
						t.Errorf("compareKeys(%q, %q) = %d, want %d", x.Key(), y.Key(), got, want)
					}
				}
			}
		}
	}
}
