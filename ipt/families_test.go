package ipt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestForFamilies: with the nft backend the families run side by side
// (each one's apply waits until the other has started: run one after the
// other, they would wait forever, and the test fails after a bound); with
// legacy, which shares the xtables lock, and the unsuffixed binaries, which may be legacy, one
// after the other, IPv4 first; either way every family runs once and every
// family's error comes back, in the order of the families. Run it with
// -race.
func TestForFamilies(t *testing.T) {
	boom := map[Family]error{IPv4: errors.New("v4 broke"), IPv6: errors.New("v6 broke")}
	for _, mode := range []Mode{ModeNFT, ModeLegacy, ModePlain} {
		for _, failing := range [][]Family{nil, {IPv4}, {IPv6}, {IPv4, IPv6}} {
			r := &Runner{Mode: mode}
			var mu sync.Mutex
			var order []string
			started := map[Family]chan struct{}{IPv4: make(chan struct{}), IPv6: make(chan struct{})}
			errs := r.forFamilies(context.Background(), Families, func(f Family) error {
				mu.Lock()
				order = append(order, "start "+f.String())
				mu.Unlock()
				close(started[f])
				if mode == ModeNFT {
					other := IPv6
					if f == IPv6 {
						other = IPv4
					}
					select {
					case <-started[other]:
					case <-time.After(10 * time.Second):
						return fmt.Errorf("%s: the other family did not start while this one ran", f)
					}
				}
				mu.Lock()
				order = append(order, "end "+f.String())
				mu.Unlock()
				for _, bad := range failing {
					if bad == f {
						return boom[f]
					}
				}
				return nil
			})
			name := fmt.Sprintf("%s failing %v", mode, failing)
			if len(errs) != 2 {
				t.Fatalf("%s: %d errors, want one per family", name, len(errs))
			}
			for i, f := range Families {
				want := error(nil)
				for _, bad := range failing {
					if bad == f {
						want = boom[f]
					}
				}
				if errs[i] != want {
					t.Errorf("%s: error of %s = %v, want %v", name, f, errs[i], want)
				}
			}
			if mode != ModeNFT && strings.Join(order, ",") != "start ipv4,end ipv4,start ipv6,end ipv6" {
				t.Errorf("%s: order %v, want one family after the other, IPv4 first", name, order)
			}
			if len(order) != 4 {
				t.Errorf("%s: order %v, want each family started and ended once", name, order)
			}
		}
	}
}
