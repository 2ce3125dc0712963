package conf

// The DNS-1123 checks the API server applies to namespace and pod names,
// written out by hand so that the plugin does not link
// k8s.io/apimachinery (its package initialisation alone costs every CNI
// invocation milliseconds). They return the same messages as
// k8s.io/apimachinery/pkg/util/validation's IsDNS1123Label and
// IsDNS1123Subdomain, which dns1123_test.go compares them with.

const (
	dns1123LabelMaxLength     = 63
	dns1123SubdomainMaxLength = 253

	dns1123LabelMsg = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', " +
		"and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', " +
		"regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
	dns1123SubdomainMsg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', " +
		"and must start and end with an alphanumeric character (e.g. 'example.com', " +
		"regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)

// isDNS1123Label returns why value is not a DNS-1123 label (none when it
// is): at most 63 characters of [a-z0-9-], starting and ending with [a-z0-9].
func isDNS1123Label(value string) []string {
	var errs []string
	if len(value) > dns1123LabelMaxLength {
		errs = append(errs, maxLenMsg(dns1123LabelMaxLength))
	}
	if !isLabel(value) {
		if isSubdomain(value) {
			errs = append(errs, "must not contain dots") // a valid subdomain: only the dots are wrong
		} else {
			errs = append(errs, dns1123LabelMsg)
		}
	}
	return errs
}

// isDNS1123Subdomain returns why value is not a DNS-1123 subdomain (none
// when it is): at most 253 characters, labels joined by dots.
func isDNS1123Subdomain(value string) []string {
	var errs []string
	if len(value) > dns1123SubdomainMaxLength {
		errs = append(errs, maxLenMsg(dns1123SubdomainMaxLength))
	}
	if !isSubdomain(value) {
		errs = append(errs, dns1123SubdomainMsg)
	}
	return errs
}

func maxLenMsg(n int) string {
	if n == dns1123LabelMaxLength {
		return "must be no more than 63 characters"
	}
	return "must be no more than 253 characters"
}

// isLabel matches [a-z0-9]([-a-z0-9]*[a-z0-9])? (any length).
func isLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isSubdomain matches labels (isLabel) joined by single dots.
func isSubdomain(s string) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if !isLabel(s[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return true
}
