package kube

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stubTransport answers every request with status, or fails.
type stubTransport struct {
	status int
	err    error
}

func (s stubTransport) RoundTrip(*http.Request) (*http.Response, error) {
	if s.err != nil {
		return nil, s.err
	}
	return &http.Response{StatusCode: s.status, Status: http.StatusText(s.status), Body: io.NopCloser(strings.NewReader(""))}, nil
}

func do(t *testing.T, rt http.RoundTripper, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := rt.RoundTrip(req)
	return resp
}

func TestTrackerFreshness(t *testing.T) {
	clock := time.Unix(1000, 0)
	tr := newTracker(2)
	tr.now = func() time.Time { return clock }
	ok := tr.wrap(stubTransport{status: 200})
	if !tr.currentAsOf().IsZero() {
		t.Fatal("current before any response")
	}
	do(t, ok, "https://api/api/v1/pods?limit=500")
	w1 := do(t, ok, "https://api/api/v1/pods?watch=true")
	clock = clock.Add(time.Second)
	if got := tr.currentAsOf(); got != time.Unix(1000, 0) {
		t.Errorf("one of two watches open: current as of %v, want the last response", got)
	}
	w2 := do(t, ok, "https://api/api/v1/namespaces?watch=1")
	clock = clock.Add(time.Minute)
	if got := tr.currentAsOf(); got != clock {
		t.Errorf("every watch open: current as of %v, want now", got)
	}
	lost := clock
	w1.Body.Close()
	w1.Body.Close() // twice: counted once
	clock = clock.Add(time.Minute)
	if got := tr.currentAsOf(); got != lost {
		t.Errorf("a watch closed: current as of %v, want when it closed (%v)", got, lost)
	}
	w2.Body.Close()

	do(t, tr.wrap(stubTransport{err: errors.New("connect: connection refused")}), "https://api/api/v1/pods")
	if f := tr.lastFailure(); !strings.Contains(f, "GET /api/v1/pods: connect: connection refused") {
		t.Errorf("lastFailure = %q", f)
	}
	do(t, tr.wrap(stubTransport{status: 403}), "https://api/api/v1/secrets")
	if f := tr.lastFailure(); !strings.Contains(f, "Forbidden") {
		t.Errorf("lastFailure = %q, want the 403", f)
	}
}
