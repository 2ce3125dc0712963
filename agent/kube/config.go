package kube

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// userAgent names the agent in the API server's logs and audit events.
const userAgent = "netpol-agent"

// RESTConfig returns the client configuration of kubeconfig, or the
// in-cluster configuration (the pod's ServiceAccount token and
// $KUBERNETES_SERVICE_HOST) when kubeconfig is empty. Built-in kinds are
// asked for as protobuf, which costs the API server and the agent less than
// JSON.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
	} else {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (or pass --kubeconfig): %w", err)
		}
	}
	cfg.UserAgent = userAgent
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return cfg, nil
}

// tracker watches the HTTP traffic of the informers to tell whether their
// watches are connected: the view is current while every informer has a
// watch stream open, and was last current when one closed.
type tracker struct {
	mu     sync.Mutex
	want   int       // streams that make the view current (one per informer)
	open   int       // watch streams open now
	lastOK time.Time // last successful response or stream end
	failed string    // the last failed request, for error messages
	now    func() time.Time
}

func newTracker(want int) *tracker { return &tracker{want: want, now: time.Now} }

// wrap is a rest.Config WrapTransport.
func (t *tracker) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		t.mu.Lock()
		defer t.mu.Unlock()
		switch {
		case err != nil:
			t.failed = fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err)
			return resp, err
		case resp.StatusCode/100 != 2:
			t.failed = fmt.Sprintf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
			return resp, err
		}
		t.lastOK = t.now()
		if q := req.URL.Query().Get("watch"); q == "true" || q == "1" {
			t.open++
			resp.Body = &trackedBody{ReadCloser: resp.Body, t: t}
		}
		return resp, nil
	})
}

// currentAsOf is now while every watch is open, else when the view was
// last known current (zero: never).
func (t *tracker) currentAsOf() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open >= t.want {
		return t.now()
	}
	return t.lastOK
}

// lastFailure describes the last request that failed ("" if none did).
func (t *tracker) lastFailure() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// trackedBody counts a watch stream as closed when its body is.
type trackedBody struct {
	io.ReadCloser
	t    *tracker
	once sync.Once
}

func (b *trackedBody) Close() error {
	b.once.Do(func() {
		b.t.mu.Lock()
		b.t.open--
		b.t.lastOK = b.t.now()
		b.t.mu.Unlock()
	})
	return b.ReadCloser.Close()
}
