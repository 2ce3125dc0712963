//go:build tools

// This file pins, in this module's go.mod and go.sum, the Kubernetes
// programs that the cluster tests build from source at the module's
// Kubernetes version: the kubelet, kube-proxy, the control plane, the
// upstream e2e suite and agnhost. Nothing imports it.
package cluster

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-proxy/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/e2e/network"
	_ "k8s.io/kubernetes/test/images/agnhost/netexec"
)
