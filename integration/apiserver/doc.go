// Package apiserver tests netpol-agent against a real kube-apiserver run
// in-process (k8s.io/kubernetes/cmd/kube-apiserver/app/testing) on an
// embedded etcd. It is a separate Go module so that its dependencies (all of
// Kubernetes) stay out of the main build.
package apiserver
