package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeletConfig is the kubelet's configuration on this kind of machine:
//   - failCgroupV1: false, cgroupDriver: cgroupfs: the cgroups are v1
//     (hybrid) and PID 1 is no systemd;
//   - cgroupRoot: the pods' cgroups under one cgroup per test;
//   - rootDir, podLogsDir, volumePluginDir, resolvConf: under the work dir;
//   - x509 and webhook authentication, webhook authorization: the API
//     server's exec/logs/port-forward reach it with its client certificate;
//   - eviction thresholds and image GC that never fire on this shared disk
//     (an evicted image cannot be pulled again: no registry);
//   - failSwapOn: false (the machine's swap is not the test's to change).
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %q
containerRuntimeEndpoint: %q
address: %q
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  x509: {clientCAFile: %q}
  webhook: {enabled: true}
  anonymous: {enabled: false}
authorization: {mode: Webhook}
podLogsDir: %q
volumePluginDir: %q
resolvConf: %q
clusterDomain: cluster.local
failSwapOn: false
protectKernelDefaults: false
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", nodefs.inodesFree: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
`

// kubeProxyConfig runs kube-proxy in iptables mode beside netpol's chains;
// conntrack limits and timeouts 0: the machine's values stay as they are.
const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
mode: iptables
clusterCIDR: %q
hostnameOverride: %q
bindAddress: %q
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`

// StartNode starts the kubelet and kube-proxy in the node's network
// namespace and the runtime's mount namespace, then waits (up to limit)
// for the node to be registered and Ready.
func (c *Cluster) StartNode(limit time.Duration) error {
	dir := filepath.Join(c.cfg.Dir, "node")
	for _, d := range []string{"root", "pod-logs", "volume-plugins", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := shadowSysctls(c.cfg.NS.Mount, filepath.Join(dir, "sysctl")); err != nil {
		return err
	}
	if err := c.startKubelet(dir); err != nil {
		return err
	}
	if err := c.startKubeProxy(dir); err != nil {
		return err
	}
	return c.waitNode(limit)
}

func (c *Cluster) startKubelet(dir string) error {
	kc, err := c.identity("kubelet", "system:node:"+c.cfg.NodeName, []string{"system:nodes"})
	if err != nil {
		return err
	}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\nsearch cluster.local\n"), 0o644); err != nil {
		return err
	}
	conf := filepath.Join(dir, "kubelet.yaml")
	text := fmt.Sprintf(kubeletConfig, CgroupRoot(c.cfg.NodeName), c.cfg.RuntimeEndpoint, c.cfg.NodeIP,
		c.pki.CertPath(), filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins"), resolv)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	return c.add(start("kubelet", c.cfg.NS, c.logDir, filepath.Join(c.cfg.Bin, "kubelet"),
		"--config="+conf,
		"--kubeconfig="+kc,
		"--root-dir="+filepath.Join(dir, "root"),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--node-ip="+c.cfg.NodeIP,
		"--hostname-override="+c.cfg.NodeName,
		"--v=2"))
}

func (c *Cluster) startKubeProxy(dir string) error {
	kc, err := c.identity("kube-proxy", "system:kube-proxy", nil)
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "kube-proxy.yaml")
	text := fmt.Sprintf(kubeProxyConfig, kc, c.cfg.PodCIDR, c.cfg.NodeName, c.cfg.NodeIP)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	return c.add(start("kube-proxy", c.cfg.NS, c.logDir, filepath.Join(c.cfg.Bin, "kube-proxy"),
		"--config="+conf, "--v=2"))
}

// waitNode polls until the node is registered and its Ready condition is
// True.
func (c *Cluster) waitNode(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last := "not registered"
	for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
		for _, p := range c.procs {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited: %v", p.Name, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := c.Client.CoreV1().Nodes().Get(ctx, c.cfg.NodeName, metav1.GetOptions{})
		cancel()
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					if cond.Status == corev1.ConditionTrue {
						return nil
					}
					last = cond.Reason + ": " + cond.Message
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("node %s not Ready after %s: %s", c.cfg.NodeName, limit, last)
}
