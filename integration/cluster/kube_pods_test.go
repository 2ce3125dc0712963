package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/netpol/netpol/integration/cluster/kube"
)

// agnhostImage is the test-server image under the name the upstream e2e
// suite expects (test/utils/image/manifest.go); it is imported into the
// runtime, never pulled.
const agnhostImage = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"

// netexecPod is a pod running `agnhost netexec` on :8080, labelled app=NAME.
func netexecPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "netexec", Image: agnhostImage, ImagePullPolicy: corev1.PullNever,
				Args:           []string{"netexec", "--http-port=8080"},
				Ports:          []corev1.ContainerPort{{ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
			}},
		},
	}
}

// waitPodsReady polls until every named pod of ns is Ready and returns
// their IPs by name.
func waitPodsReady(t *testing.T, c kubernetes.Interface, ns string, names []string, limit time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for i := 0; ; i++ {
		ips, pending := map[string]string{}, []string{}
		for _, n := range names {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			p, err := c.CoreV1().Pods(ns).Get(ctx, n, metav1.GetOptions{})
			cancel()
			if err != nil || !podReady(p) || p.Status.PodIP == "" {
				pending = append(pending, fmt.Sprintf("%s(%s)", n, podState(p, err)))
				continue
			}
			ips[n] = p.Status.PodIP
		}
		if len(pending) == 0 {
			return ips
		}
		if time.Now().After(deadline) || i > 1000 {
			t.Fatalf("pods of %s not ready after %s: %s", ns, limit, strings.Join(pending, " "))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podState says briefly why a pod is not ready (phase and the first
// waiting container's reason).
func podState(p *corev1.Pod, err error) string {
	if err != nil {
		return err.Error()
	}
	s := string(p.Status.Phase)
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			return s + " " + cs.Name + ": " + w.Reason + " " + w.Message
		}
	}
	return s
}

// dial asks the netexec server at fromIP to open an HTTP connection to
// toIP:8080 (real TCP between the two pods; the test reaches fromIP from
// the node, which netpol always lets through) and reports whether it got
// the server's hostname back.
func dial(t *testing.T, nodeNS, fromIP, toIP, wantHost string) (bool, string) {
	t.Helper()
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DialContext: kube.DialIn(nodeNS), DisableKeepAlives: true},
	}
	q := url.Values{"request": {"hostname"}, "protocol": {"http"}, "host": {toIP}, "port": {"8080"}, "tries": {"1"}}
	resp, err := client.Get("http://" + fromIP + ":8080/dial?" + q.Encode())
	if err != nil {
		return false, "asking " + fromIP + ": " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var out struct {
		Responses []string `json:"responses"`
		Errors    []string `json:"errors"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return false, fmt.Sprintf("netexec at %s answered %q", fromIP, body)
	}
	return len(out.Responses) == 1 && out.Responses[0] == wantHost, string(body)
}

// waitReach polls dial until its verdict is want, for at most limit (the
// agent realizes a policy change asynchronously).
func waitReach(t *testing.T, nodeNS, fromIP, toIP, wantHost string, want bool, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for i := 0; ; i++ {
		got, detail := dial(t, nodeNS, fromIP, toIP, wantHost)
		if got == want {
			return
		}
		if time.Now().After(deadline) || i > 200 {
			t.Fatalf("%s -> %s (%s): reachable=%v, want %v: %s", fromIP, toIP, wantHost, got, want, detail)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
