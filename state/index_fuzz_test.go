package state

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzDecodeIndex feeds arbitrary bytes to DecodeIndex. An accepted index,
// encoded again, decodes to the same value; decoding for one pod keeps
// exactly that pod's memberships.
func FuzzDecodeIndex(f *testing.F) {
	f.Add([]byte("netpol-index 1\nisolated default prod\nm 4 NETPOL4-GI-YZ3YLLTHPD45N4DC\n"+
		"m 4 NETPOL4-N-3J7Q2WJ4KQ3C7F2A ,tcp:6379\nm 6 NETPOL6-GI-YZ3YLLTHPD45N4DC\npod default/db 0 1 2\npod prod/web 0\n"), "default/db")
	f.Add([]byte("netpol-index 3\nisolated\n"), "")
	f.Add([]byte("netpol-index 1\nisolated\npod a/b 0\n"), "a/b")
	f.Add([]byte("netpol-index x\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, only string) {
		idx, err := DecodeIndex(data, "")
		if err != nil {
			return
		}
		again, err := DecodeIndex(EncodeIndex(idx), "")
		if err != nil {
			t.Fatalf("encoded index does not decode: %v\n%s", err, EncodeIndex(idx))
		}
		if diff := cmp.Diff(idx, again, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip changed the index (-first +second):\n%s", diff)
		}
		one, err := DecodeIndex(data, only)
		if only == "" || err != nil {
			return
		}
		want, known := idx.Pods[only]
		got, found := one.Pods[only]
		if len(one.Pods) > 1 || known != found || !cmp.Equal(want, got, cmpopts.EquateEmpty()) {
			t.Errorf("decoding for %q gave %v, the full index has %v", only, one.Pods, want)
		}
	})
}
