package agent

import (
	"sync"
	"time"
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
}

// SyncObserver hears of every Agent.Sync (metrics).
type SyncObserver interface {
	ObserveSync(res SyncResult, err error)
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

// Quarantined is how many pod records were found unusable and moved aside.
func (s *Status) Quarantined() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quarantined
}

func (s *Status) quarantine(n int) {
	s.mu.Lock()
	s.quarantined += n
	s.mu.Unlock()
}

func (s *Status) beat() {
	s.mu.Lock()
	s.heartbeat = time.Now()
	s.mu.Unlock()
}

func (s *Status) setReady() {
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
}

func (s *Status) setCurrentAsOf(t time.Time) {
	s.mu.Lock()
	s.currentAsOf = t
	s.mu.Unlock()
}

func (s *Status) reject(err error) {
	s.mu.Lock()
	s.rejected++
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// status returns the agent's Status, creating it when the caller set none.
func (a *Agent) status() *Status {
	if a.Status == nil {
		a.Status = &Status{}
	}
	return a.Status
}
