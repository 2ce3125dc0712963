package conf

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// TestDNS1123MatchesAPIMachinery holds the plugin's own DNS-1123 checks to
// apimachinery's, message for message, on names valid and invalid.
func TestDNS1123MatchesAPIMachinery(t *testing.T) {
	values := []string{
		"", "a", "0", "-", ".", "a-b", "a--b", "-a", "a-", "A", "aB", "a_b", "a.b", "a..b", ".a", "a.", "a.-b",
		"a-.b", "my-name", "123-abc", "example.com", "kube-system", "a b", "ä", "a/b", "a:b", "x\x00",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 64) + ".",
		strings.Repeat("a", 63) + "." + strings.Repeat("b", 63), strings.Repeat("a.", 126) + "a",
		strings.Repeat("a.", 127) + "a", strings.Repeat("a", 254), strings.Repeat("a", 254) + "_",
		strings.Repeat("A", 300),
	}
	for _, v := range values {
		if got, want := isDNS1123Label(v), validation.IsDNS1123Label(v); !slices.Equal(got, want) {
			t.Errorf("isDNS1123Label(%q) = %q, apimachinery says %q", v, got, want)
		}
		if got, want := isDNS1123Subdomain(v), validation.IsDNS1123Subdomain(v); !slices.Equal(got, want) {
			t.Errorf("isDNS1123Subdomain(%q) = %q, apimachinery says %q", v, got, want)
		}
	}
}

// FuzzDNS1123 compares the checks with apimachinery's on any input.
func FuzzDNS1123(f *testing.F) {
	for _, s := range []string{"a", "a.b", "-a", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := isDNS1123Label(v), validation.IsDNS1123Label(v); !slices.Equal(got, want) {
			t.Errorf("isDNS1123Label(%q) = %q, apimachinery says %q", v, got, want)
		}
		if got, want := isDNS1123Subdomain(v), validation.IsDNS1123Subdomain(v); !slices.Equal(got, want) {
			t.Errorf("isDNS1123Subdomain(%q) = %q, apimachinery says %q", v, got, want)
		}
	})
}
