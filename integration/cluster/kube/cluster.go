// Package kube runs a one-node Kubernetes cluster made of the real
// programs, built from source at the version integration/cluster/go.mod
// pins: etcd (embedded in kube/cmd/etcd), kube-apiserver,
// kube-controller-manager, kube-scheduler, the kubelet and kube-proxy.
// Every process runs inside the node's network namespace (made by the
// test, never the root namespace); the kubelet and kube-proxy also in the
// container runtime's private mount namespace. The test process reaches
// the API server through sockets made in that namespace (DialIn).
package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Config says where and how the cluster runs.
type Config struct {
	Dir             string     // work dir: pki, logs, state of every program
	Bin             string     // dir holding the programs (hack/k8s-build.sh)
	NS              Namespaces // the node's network namespace, the runtime's mount namespace
	NodeName        string
	NodeIP          string // the node's address (a veth into another test namespace)
	PodCIDR         string // the bridge's pod subnet: kube-proxy's clusterCIDR
	ServiceCIDR     string // default 10.96.0.0/16
	RuntimeEndpoint string // the runtime's CRI socket, unix:///...
	// Sysctls are the files the kubelet writes (vm.overcommit_memory,
	// kernel.panic, kernel.panic_on_oops): the mount namespace must shadow
	// them (see the runtime package); the kubelet is told to set them.
}

// Cluster is a running control plane (and, after StartNode, a node).
type Cluster struct {
	cfg         Config
	pki         *authority
	procs       []*Process
	logDir      string
	Server      string       // https://NODEIP:6443
	Kubeconfig  string       // admin (system:masters), for programs in the node namespace
	Rest        *rest.Config // admin, dialing inside the node namespace
	Client      kubernetes.Interface
	ServiceHost string // the kubernetes Service's ClusterIP
}

const apiPort = 6443

// StartControlPlane starts etcd, kube-apiserver (and waits for /readyz),
// kube-controller-manager and kube-scheduler. On error everything started
// is stopped again.
func StartControlPlane(cfg Config) (_ *Cluster, err error) {
	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = "10.96.0.0/16"
	}
	if net.ParseIP(cfg.NodeIP) == nil {
		return nil, fmt.Errorf("kube: NodeIP %q is not an IP address", cfg.NodeIP)
	}
	_, svc, perr := net.ParseCIDR(cfg.ServiceCIDR)
	if perr != nil {
		return nil, fmt.Errorf("kube: ServiceCIDR %q: %w", cfg.ServiceCIDR, perr)
	}
	c := &Cluster{cfg: cfg, logDir: filepath.Join(cfg.Dir, "logs")}
	c.Server = fmt.Sprintf("https://%s", net.JoinHostPort(cfg.NodeIP, fmt.Sprint(apiPort)))
	first := append(net.IP(nil), svc.IP.To4()...)
	first[3]++
	c.ServiceHost = first.String()
	for _, d := range []string{c.logDir, filepath.Join(cfg.Dir, "pki"), filepath.Join(cfg.Dir, "etcd")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, c.Dump())
			_ = c.Stop()
		}
	}()
	if c.pki, err = newAuthority(filepath.Join(cfg.Dir, "pki")); err != nil {
		return nil, err
	}
	if err := c.startEtcd(); err != nil {
		return nil, err
	}
	if err := c.startAPIServer(first); err != nil {
		return nil, err
	}
	if err := c.connect(); err != nil {
		return nil, err
	}
	if err := c.waitReady(90 * time.Second); err != nil {
		return nil, err
	}
	if err := c.startControllers(); err != nil {
		return nil, err
	}
	return c, nil
}

// Stop stops every process by PID, newest first.
func (c *Cluster) Stop() error { return stopAll(c.procs) }

// Dump renders the last lines of every process's log.
func (c *Cluster) Dump() string { return tails(c.procs, 40) }

// Processes are the cluster's programs in start order.
func (c *Cluster) Processes() []*Process { return c.procs }

// CAFile is the cluster CA's certificate.
func (c *Cluster) CAFile() string { return c.pki.CertPath() }

func (c *Cluster) add(p *Process, err error) error {
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	return nil
}

func (c *Cluster) startEtcd() error {
	return c.add(start("etcd", Namespaces{Net: c.cfg.NS.Net}, c.logDir, filepath.Join(c.cfg.Bin, "etcd"),
		filepath.Join(c.cfg.Dir, "etcd"), "http://127.0.0.1:2379", "http://127.0.0.1:2380"))
}

// connect writes the admin kubeconfig and builds the test's client.
func (c *Cluster) connect() error {
	crt, key, err := c.pki.issue("admin", "netpol-test-admin", []string{"system:masters"}, nil, nil)
	if err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.cfg.Dir, "admin.kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Server, c.pki.CertPath(), crt, key); err != nil {
		return err
	}
	c.Rest = &rest.Config{
		Host: c.Server,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile: c.pki.CertPath(), CertFile: crt, KeyFile: key,
		},
		Dial:    DialIn(c.cfg.NS.Net),
		QPS:     50,
		Burst:   100,
		Timeout: 30 * time.Second,
	}
	c.Client, err = kubernetes.NewForConfig(c.Rest)
	return err
}

// waitReady polls the API server's /readyz until it answers ok.
func (c *Cluster) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
		for _, p := range c.procs {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited: %v", p.Name, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil && string(body) == "ok" {
			return nil
		}
		last = fmt.Errorf("readyz: %q: %v", body, err)
		time.Sleep(300 * time.Millisecond)
	}
	return errors.Join(errors.New("kube-apiserver not ready"), last)
}

// Dir is the cluster's work dir.
func (c *Cluster) Dir() string { return c.cfg.Dir }
