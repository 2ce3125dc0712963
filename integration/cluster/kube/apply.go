package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// Decode reads a multi-document YAML manifest into typed objects.
func Decode(manifest []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufioReader(manifest))
	var objs []runtime.Object
	for i := 0; i < 1000; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		objs = append(objs, obj)
	}
	return nil, errors.New("manifest: more than 1000 documents")
}

// Create creates each object (the kinds of deploy/: ServiceAccount,
// ClusterRole, ClusterRoleBinding, DaemonSet), like kubectl create.
func (c *Cluster) Create(ctx context.Context, objs []runtime.Object) error {
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			_, err = c.Client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = c.Client.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = c.Client.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.DaemonSet:
			_, err = c.Client.AppsV1().DaemonSets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			err = fmt.Errorf("kind %T not supported", o)
		}
		if err != nil {
			return fmt.Errorf("creating %T: %w", o, err)
		}
	}
	return nil
}

// Delete deletes each object (foreground: a DaemonSet's pods go first),
// like kubectl delete; an object already gone is not an error.
func (c *Cluster) Delete(ctx context.Context, objs []runtime.Object) error {
	fg := metav1.DeletePropagationForeground
	opts := metav1.DeleteOptions{PropagationPolicy: &fg}
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			err = c.Client.CoreV1().ServiceAccounts(o.Namespace).Delete(ctx, o.Name, opts)
		case *rbacv1.ClusterRole:
			err = c.Client.RbacV1().ClusterRoles().Delete(ctx, o.Name, opts)
		case *rbacv1.ClusterRoleBinding:
			err = c.Client.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, opts)
		case *appsv1.DaemonSet:
			err = c.Client.AppsV1().DaemonSets(o.Namespace).Delete(ctx, o.Name, opts)
		default:
			err = fmt.Errorf("kind %T not supported", o)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %T: %w", o, err)
		}
	}
	return nil
}

// stripComments drops YAML comment lines (a document of only comments
// is empty).
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
