package cluster_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestControlPlaneServesPods starts etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler in a test-made namespace and
// checks that the controllers every pod depends on ran: the default
// namespace has its service account and the kube-root-ca.crt config map.
func TestControlPlaneServesPods(t *testing.T) {
	bin := k8sBin(t, "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
	n := newNodeNet(t)
	c := startControlPlane(t, bin, n, "", "", "10.244.0.0/16")
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, errSA := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		_, errCM := c.Client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		cancel()
		if errSA == nil && errCM == nil {
			return
		}
		if time.Now().After(deadline) || i > 300 {
			t.Fatalf("default namespace not ready for pods: service account: %v; kube-root-ca.crt: %v", errSA, errCM)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
