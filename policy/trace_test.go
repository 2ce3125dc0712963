package policy

import "testing"

// packet is shorthand for the tests.
type packet = Packet

// trace walks p through c and fails the test on a malformed ruleset.
func trace(t *testing.T, c *Compiled, p packet) bool {
	t.Helper()
	res, err := Trace(c, p)
	if err != nil {
		t.Fatal(err)
	}
	return res.Allowed
}
