package ops

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/netpol/netpol/agent/health"
	"github.com/netpol/netpol/ipt"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

// fakeHealth is a Health set by hand.
type fakeHealth struct {
	heartbeat time.Time
	ready     bool
	bridgeNF  map[ipt.Family]string
}

func (h *fakeHealth) Heartbeat() time.Time            { return h.heartbeat }
func (h *fakeHealth) Ready() bool                     { return h.ready }
func (h *fakeHealth) BridgeNF() map[ipt.Family]string { return h.bridgeNF }

func TestHealthAndReadiness(t *testing.T) {
	st := &fakeHealth{}
	m := NewMetrics(Sources{Status: &health.Status{}})
	h := Handler(m, st, time.Minute)
	if code, _ := get(t, h, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz before the run loop = %d, want 503", code)
	}
	if code, _ := get(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the first sync = %d, want 503", code)
	}
	st.heartbeat, st.ready = time.Now(), true
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with a fresh heartbeat = %d, want 200", code)
	}
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the first sync = %d, want 200", code)
	}
	st.bridgeNF = map[ipt.Family]string{ipt.IPv4: "", ipt.IPv6: "net.bridge.bridge-nf-call-ip6tables is 0 in this network namespace"}
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, st.bridgeNF[ipt.IPv6]) {
		t.Errorf("/readyz with bridge-nf-call-ip6tables off = %d %q, want 503 saying so", code, body)
	}
	st.bridgeNF[ipt.IPv6] = ""
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with bridge-nf-call back on = %d, want 200", code)
	}
	st.heartbeat = time.Now().Add(-2 * time.Minute)
	if code, body := get(t, h, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stalled") {
		t.Errorf("/healthz with a stale heartbeat = %d %q, want 503 stalled", code, body)
	}
}

func TestMetrics(t *testing.T) {
	st := &health.Status{}
	m := NewMetrics(Sources{Status: st, Skipped: func() int { return 2 }})
	m.ObserveSync(health.SyncResult{Chains: 5, Rules: 40, Sets: 7, Members: 300, Took: 30 * time.Millisecond,
		Disabled: []ipt.Family{ipt.IPv6}, Realized: []time.Duration{40 * time.Millisecond, 3 * time.Second}}, nil)
	m.ObserveSync(health.SyncResult{Took: time.Millisecond, Realized: []time.Duration{time.Hour}}, errors.New("restore failed"))
	code, body := get(t, Handler(m, st, time.Minute), "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		"netpol_sync_duration_seconds_count 2",
		"netpol_policy_realization_seconds_count 2", // a failed sync realizes nothing
		`netpol_policy_realization_seconds_bucket{le="0.05"} 1`,
		`netpol_policy_realization_seconds_bucket{le="5"} 2`,
		`netpol_syncs_total{result="success"} 1`,
		`netpol_syncs_total{result="error"} 1`,
		"netpol_rules 40", "netpol_chains 5", "netpol_sets 7", "netpol_set_members 300",
		"netpol_last_sync_success_timestamp_seconds 1", // a Unix time: 1.7e+09
		"netpol_snapshot_age_seconds NaN",
		"netpol_ready 0",
		"netpol_input_rejected_total 0",
		"netpol_quarantined_records_total 0",
		"netpol_skipped_objects 2",
		`netpol_bridge_nf_call{family="ipv4"} NaN`, // not checked yet
		`netpol_bridge_nf_call{family="ipv6"} NaN`,
		`netpol_family_disabled{family="ipv4"} 0`,
		`netpol_family_disabled{family="ipv6"} 1`,
		"process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
