package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netpol/netpol/ipt"
)

// Health is what the checks read (a *health.Status).
type Health interface {
	Heartbeat() time.Time
	Ready() bool
	// BridgeNF is, per family checked, "" when bridged traffic reaches
	// iptables and otherwise why not.
	BridgeNF() map[ipt.Family]string
}

// Handler serves /metrics, /healthz and /readyz.
//
//   - /healthz is 200 while the agent's run loop went round within stall
//     (a sync waits at most for the data directory lock and one restore, so
//     a loop stuck longer than that is worth a restart).
//   - /readyz is 200 once a snapshot from the source has been applied: for
//     the API source, the informers have synced and the first sync is done.
//     While the node enforces the stored snapshot (API unreachable at start)
//     it is 503. It is 503 too, saying what to set, while bridged traffic
//     of either family bypasses iptables (br_netfilter's
//     bridge-nf-call-iptables or -ip6tables off): policy is not enforced
//     between pods of this node then.
func Handler(m *Metrics, st Health, stall time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		hb := st.Heartbeat()
		if hb.IsZero() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if since := time.Since(hb); since > stall {
			http.Error(w, fmt.Sprintf("run loop stalled for %s", since.Round(time.Second)), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := bridgeNFOff(st.BridgeNF()); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		if !st.Ready() {
			http.Error(w, "not ready: the source's view is not applied yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// bridgeNFOff joins the reasons bridged traffic bypasses iptables, IPv4
// first ("" when it reaches iptables for every family checked).
func bridgeNFOff(bridgeNF map[ipt.Family]string) string {
	var why []string
	for _, f := range ipt.Families {
		if bridgeNF[f] != "" {
			why = append(why, bridgeNF[f])
		}
	}
	return strings.Join(why, "; ")
}

// Serve listens on addr (host:port; port 0 picks one), logs the address it
// got, and serves h until ctx ends. It returns once listening; errors after
// that are logged.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving metrics and health checks", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics and health server", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), nil
}
