package ops

import "github.com/prometheus/client_golang/prometheus"

// dropMetrics are the counters of the drop log.
type dropMetrics struct {
	dropped *prometheus.CounterVec
	lost    prometheus.Counter
}

func newDropMetrics(r *prometheus.Registry) dropMetrics {
	d := dropMetrics{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netpol_dropped_packets_total",
			Help: "Dropped packets the kernel logged to netpol's NFLOG group (at most --drop-log-rate a second per drop rule), " +
				"by direction, reason (nopolicy, unknown) and the namespace of the pod whose policy dropped them.",
		}, []string{"direction", "reason", "namespace"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "netpol_drop_log_lost_total",
			Help: "NFLOG messages of dropped packets that the kernel could not deliver to the agent (its socket buffer was full): gaps in the group's sequence numbers.",
		}),
	}
	r.MustRegister(d.dropped, d.lost)
	return d
}

// ObserveDrop counts one drop record (health.DropObserver).
func (m *Metrics) ObserveDrop(direction, reason, namespace string) {
	m.drops.dropped.WithLabelValues(direction, reason, namespace).Inc()
}

// ObserveLost counts lost NFLOG messages (health.DropObserver).
func (m *Metrics) ObserveLost(messages uint64) { m.drops.lost.Add(float64(messages)) }
