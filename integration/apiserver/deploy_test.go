package apiserver

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
)

// testDeployManifests: the DaemonSets of deploy/ decode strictly (no
// unknown or misspelt field) and the API server accepts them (dry run);
// the agent runs as the ServiceAccount of deploy/rbac.yaml with what it
// needs on the node.
func (c *cluster) testDeployManifests(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	strict := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	var agent *appsv1.DaemonSet
	for _, file := range []string{"../../deploy/netpol.yaml", "../../deploy/uninstall.yaml"} {
		for _, obj := range decodeFileWith(t, file, strict) {
			ds, ok := obj.(*appsv1.DaemonSet)
			if !ok {
				t.Fatalf("%s: unexpected %T", file, obj)
			}
			if _, err := c.admin.AppsV1().DaemonSets(ds.Namespace).Create(ctx, ds,
				metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("%s: DaemonSet %s rejected: %v", file, ds.Name, err)
			}
			if ds.Name == "netpol" {
				agent = ds
			}
		}
	}
	if agent == nil {
		t.Fatal("deploy/netpol.yaml: no DaemonSet netpol")
	}
	spec := agent.Spec.Template.Spec
	if spec.ServiceAccountName != "netpol" || agent.Namespace != "kube-system" || !spec.HostNetwork {
		t.Errorf("DaemonSet netpol: serviceAccount %q in %q, hostNetwork %v; want netpol in kube-system (deploy/rbac.yaml) on the host network",
			spec.ServiceAccountName, agent.Namespace, spec.HostNetwork)
	}
	if len(spec.InitContainers) != 1 || !slices.Contains(spec.InitContainers[0].Command, "install-cni") {
		t.Errorf("DaemonSet netpol: want one init container running install-cni, got %v", spec.InitContainers)
	}
	ag := spec.Containers[0]
	caps := ag.SecurityContext.Capabilities.Add
	if !slices.Contains(caps, corev1.Capability("NET_ADMIN")) || !slices.Contains(caps, corev1.Capability("NET_RAW")) {
		t.Errorf("agent capabilities %v, want NET_ADMIN and NET_RAW", caps)
	}
	var mounts []string
	for _, m := range ag.VolumeMounts {
		mounts = append(mounts, m.MountPath)
	}
	for _, want := range []string{"/var/lib/netpol", "/run/xtables.lock", "/host/etc/cni/net.d", "/host/opt/cni/bin"} {
		if !slices.Contains(mounts, want) {
			t.Errorf("agent mounts %v, want %s", mounts, want)
		}
	}
	if len(ag.Env) == 0 || ag.Env[0].Name != "NODE_NAME" || ag.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("agent env %v: want NODE_NAME from spec.nodeName", ag.Env)
	}
}
