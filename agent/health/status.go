// Package health is what the agent's run loop reports and the operations
// endpoint (package ops) reads: the agent's Status and the result of each
// sync.
package health

import (
	"sync"
	"time"

	"github.com/netpol/netpol/ipt"
)

// Status is what a running agent says about itself, for health checks,
// readiness and metrics. It is safe for concurrent use; the zero value is
// ready to use.
type Status struct {
	mu          sync.Mutex
	heartbeat   time.Time
	ready       bool
	currentAsOf time.Time
	rejected    int
	quarantined int
	lastErr     string
	// bridgeNF holds, per family checked, "" when bridged traffic reaches
	// iptables and otherwise why not.
	bridgeNF map[ipt.Family]string
}

// Heartbeat is when the run loop last went round (zero before Run).
func (s *Status) Heartbeat() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heartbeat
}

// Ready reports whether a snapshot loaded from the source (not the stored
// one) has been synced to the kernel: for the API source, the informers
// have synced and their view is applied.
func (s *Status) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// CurrentAsOf is the time up to which the enforced view is known to match
// the source (zero when nothing is enforced yet).
func (s *Status) CurrentAsOf() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.currentAsOf
}

// Rejected is how many times the source's input was rejected as invalid,
// and the last reason.
func (s *Status) Rejected() (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected, s.lastErr
}

// BridgeNF returns, for each family checked so far, "" when bridged traffic
// of that family reaches iptables in the agent's network namespace and
// otherwise why it does not (ipt.CheckBridgeNFCall).
func (s *Status) BridgeNF() map[ipt.Family]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[ipt.Family]string, len(s.bridgeNF))
	for f, why := range s.bridgeNF {
		out[f] = why
	}
	return out
}

// SetBridgeNF records one check of family f and returns the previous
// state (known false before the first check).
func (s *Status) SetBridgeNF(f ipt.Family, why string) (was string, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bridgeNF == nil {
		s.bridgeNF = map[ipt.Family]string{}
	}
	was, known = s.bridgeNF[f]
	s.bridgeNF[f] = why
	return was, known
}

// Quarantined is how many pod records were found unusable and moved aside.
func (s *Status) Quarantined() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quarantined
}

// Quarantine counts n more pod records moved aside as unusable.
func (s *Status) Quarantine(n int) {
	s.mu.Lock()
	s.quarantined += n
	s.mu.Unlock()
}

// Beat records that the run loop went round now.
func (s *Status) Beat() {
	s.mu.Lock()
	s.heartbeat = time.Now()
	s.mu.Unlock()
}

// SetReady records that a snapshot loaded from the source is synced.
func (s *Status) SetReady() {
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
}

// SetCurrentAsOf records the time up to which the enforced view is known
// to match the source.
func (s *Status) SetCurrentAsOf(t time.Time) {
	s.mu.Lock()
	s.currentAsOf = t
	s.mu.Unlock()
}

// Reject counts one rejection of the source's input, for reason err.
func (s *Status) Reject(err error) {
	s.mu.Lock()
	s.rejected++
	s.lastErr = err.Error()
	s.mu.Unlock()
}
