// Package ops is netpol-agent's operations endpoint: Prometheus metrics,
// /healthz (the run loop is alive) and /readyz (the source's view is applied
// to the kernel), on one HTTP listener.
package ops

import (
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/netpol/netpol/agent/health"
	"github.com/netpol/netpol/ipt"
)

// Metrics are the agent's Prometheus metrics. It is a health.SyncObserver.
type Metrics struct {
	Registry *prometheus.Registry

	syncDuration prometheus.Histogram
	realization  prometheus.Histogram
	syncs        *prometheus.CounterVec
	lastSuccess  prometheus.Gauge
	chains       prometheus.Gauge
	rules        prometheus.Gauge
	sets         prometheus.Gauge
	members      prometheus.Gauge
	disabled     *prometheus.GaugeVec
	drops        dropMetrics
}

// Sources of the metrics that are read when scraped.
type Sources struct {
	Status *health.Status
	// Skipped, when set, is how many API objects the last snapshot left
	// out as invalid.
	Skipped func() int
}

// NewMetrics registers the agent's metrics, and the Go runtime's and the
// process's, in a new registry.
func NewMetrics(src Sources) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.syncDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "netpol_sync_duration_seconds",
		Help:    "Time of one sync: compile the snapshot and apply it to the kernel in one transaction per family.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.realization = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "netpol_policy_realization_seconds",
		Help: "Per change the agent received (an API object's version, a manifest file's content): " +
			"the time from its receipt to the kernel commit of the sync that enforces it.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	m.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netpol_syncs_total",
		Help: "Syncs by result (success, error); a failed sync leaves the previous rules in place.",
	}, []string{"result"})
	m.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "netpol_last_sync_success_timestamp_seconds",
		Help: "Unix time of the last successful sync.",
	})
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m.chains = gauge("netpol_chains", "Chains of ours in the kernel after the last successful sync, both families.")
	m.rules = gauge("netpol_rules", "Rules in our chains after the last successful sync, both families.")
	m.sets = gauge("netpol_sets", "ipsets of ours after the last successful sync, both families.")
	m.members = gauge("netpol_set_members", "Members of our ipsets after the last successful sync, both families.")
	m.disabled = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "netpol_family_disabled",
		Help: "1 while the last successful sync left a family unenforced: its iptables are unusable and no local pod has an address of it.",
	}, []string{"family"})
	for _, f := range ipt.Families {
		m.disabled.WithLabelValues(f.String())
	}
	m.syncs.WithLabelValues("success")
	m.syncs.WithLabelValues("error")
	m.Registry.MustRegister(m.syncDuration, m.realization, m.syncs, m.lastSuccess, m.chains, m.rules, m.sets, m.members, m.disabled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.drops = newDropMetrics(m.Registry)
	m.registerStatus(src)
	return m
}

// registerStatus adds the metrics read from the agent's status at scrape
// time.
func (m *Metrics) registerStatus(src Sources) {
	st := src.Status
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "netpol_snapshot_age_seconds",
			Help: "Seconds since the enforced snapshot was last known to match the source " +
				"(0 while the API watches are connected; grows while the API is unreachable; NaN before any snapshot).",
		}, func() float64 {
			t := st.CurrentAsOf()
			if t.IsZero() {
				return math.NaN()
			}
			return max(0, time.Since(t).Seconds())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "netpol_ready",
			Help: "1 once a snapshot from the source (not the stored one) has been applied.",
		}, func() float64 { return b2f(st.Ready()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "netpol_input_rejected_total",
			Help: "Loads of the source rejected as invalid (the last good state was kept).",
		}, func() float64 { n, _ := st.Rejected(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "netpol_quarantined_records_total",
			Help: "Pod records found unusable (not JSON, or not a valid record) and moved to dataDir/quarantine/; their pods are unknown to netpol until added again.",
		}, func() float64 { return float64(st.Quarantined()) }),
	)
	for _, f := range ipt.Families {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "netpol_bridge_nf_call",
			Help: "1 when bridged traffic of the family passes through iptables in the agent's network namespace " +
				"(net.bridge.bridge-nf-call-iptables or -ip6tables is 1), 0 when it bypasses every policy; NaN before the first check.",
			ConstLabels: prometheus.Labels{"family": f.String()},
		}, func() float64 {
			why, checked := st.BridgeNF()[f]
			if !checked {
				return math.NaN()
			}
			return b2f(why == "")
		}))
	}
	if src.Skipped != nil {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "netpol_skipped_objects",
			Help: "API objects left out of the snapshot because netpol's validation rejected them.",
		}, func() float64 { return float64(src.Skipped()) }))
	}
}

// ObserveSync records one sync (health.SyncObserver).
func (m *Metrics) ObserveSync(res health.SyncResult, err error) {
	m.syncDuration.Observe(res.Took.Seconds())
	if err != nil {
		m.syncs.WithLabelValues("error").Inc()
		return
	}
	m.syncs.WithLabelValues("success").Inc()
	for _, d := range res.Realized {
		m.realization.Observe(d.Seconds())
	}
	m.lastSuccess.SetToCurrentTime()
	m.chains.Set(float64(res.Chains))
	m.rules.Set(float64(res.Rules))
	m.sets.Set(float64(res.Sets))
	m.members.Set(float64(res.Members))
	for _, f := range ipt.Families {
		m.disabled.WithLabelValues(f.String()).Set(b2f(slices.Contains(res.Disabled, f)))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
