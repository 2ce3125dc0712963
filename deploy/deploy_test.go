// Package deploy holds the Kubernetes manifests of netpol; its test keeps
// the DaemonSet's hardening from being dropped by a later edit.
package deploy

import (
	"bytes"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// daemonSet decodes the DaemonSet of netpol.yaml, strictly (an unknown or
// misspelt field is an error).
func daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	data, err := os.ReadFile("netpol.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("netpol.yaml document %d: %v", i+1, err)
		}
		if tm.Kind != "DaemonSet" {
			continue
		}
		ds := &appsv1.DaemonSet{}
		if err := yaml.UnmarshalStrict(doc, ds); err != nil {
			t.Fatalf("netpol.yaml document %d: %v", i+1, err)
		}
		return ds
	}
	t.Fatal("netpol.yaml has no DaemonSet")
	return nil
}

func TestDaemonSetHardening(t *testing.T) {
	spec := daemonSet(t).Spec.Template.Spec
	if sp := spec.SecurityContext; sp == nil || sp.SeccompProfile == nil || sp.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext.seccompProfile is not RuntimeDefault: %+v", sp)
	}
	containers := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range containers {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s: no securityContext", c.Name)
			continue
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s: privileged", c.Name)
		}
	}
	agent := spec.Containers[0]
	caps := agent.SecurityContext.Capabilities
	if caps == nil || !slices.Equal(caps.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("agent: capabilities do not drop ALL: %+v", caps)
	} else if !slices.Equal(caps.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("agent: capabilities add %v, want exactly NET_ADMIN and NET_RAW", caps.Add)
	}
}

// TestMetricsOnLoopback checks that the agent's metrics and health server is
// bound to the node's loopback (the pod has every address of the node) and
// that the probes ask it there.
func TestMetricsOnLoopback(t *testing.T) {
	agent := daemonSet(t).Spec.Template.Spec.Containers[0]
	var addr string
	for _, a := range agent.Command {
		if v, ok := strings.CutPrefix(a, "--metrics-addr="); ok {
			addr = v
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("agent --metrics-addr %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Errorf("agent --metrics-addr %q is not on the loopback", addr)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": agent.LivenessProbe, "readiness": agent.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("agent: no %s httpGet probe", name)
			continue
		}
		if p.HTTPGet.Host != host || p.HTTPGet.Port.String() != port {
			t.Errorf("agent: %s probe asks %s:%s, the server is on %s", name, p.HTTPGet.Host, p.HTTPGet.Port.String(), addr)
		}
	}
}
